//! Writes the CRDs of the `sandbox.hero.dev` group as YAML.
//!
//! `crdgen` prints all of them to stdout; `crdgen DIR` writes one file per CRD into DIR.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1);
    for crd in controller::resources::crds() {
        let yaml = serde_yaml::to_string(&crd)?;
        match &dir {
            Some(dir) => {
                let name = crd.metadata.name.as_deref().unwrap_or("crd");
                std::fs::write(Path::new(dir).join(format!("{name}.yaml")), yaml)?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}
