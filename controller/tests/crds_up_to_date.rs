//! `crds/` is generated from the Rust types and never edited by hand: this fails when the two
//! drift apart. Run `make crds` to regenerate.

use std::path::Path;

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let crds = controller::resources::crds();
    let mut expected_files: Vec<String> = Vec::new();
    for crd in crds {
        let name = crd.metadata.name.clone().expect("CRD has a name");
        let file = format!("{name}.yaml");
        let generated = serde_yaml::to_string(&crd).unwrap();
        let committed = std::fs::read_to_string(dir.join(&file))
            .unwrap_or_else(|e| panic!("crds/{file} is missing ({e}); run `make crds`"));
        assert!(
            generated == committed,
            "crds/{file} differs from the Rust types; run `make crds`"
        );
        expected_files.push(file);
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(
        present, expected_files,
        "crds/ holds files the types do not generate"
    );
}
