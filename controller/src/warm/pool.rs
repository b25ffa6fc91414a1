//! Keeping a HostPool's warm pool at its size: what to build and what to remove is decided by
//! [`plan`] (pure), then carried out by [`keep`].
//!
//! Rules: at most `maxBuilding` machines are built at once; a failed machine is removed; a
//! Ready machine whose apps are older than the channel's newest (or built for a spec the pool
//! no longer asks for) is removed only once a replacement is Ready, so a roll never empties the
//! pool; shrinking removes machines being built first. A claimed machine is never touched here.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, PostParams, Preconditions},
};

use super::warming;
use crate::{
    context::Context,
    error::{Error, Result},
    resources::{
        HostPool, WarmMachine, WarmMachineSpec, WarmNames, WarmPhase, WarmPool, WarmPoolStatus,
    },
    tester::warm_start::app_set,
};

/// How long a machine created but not yet in the cache is counted as being built.
const UNSEEN_FOR: Duration = Duration::from_secs(30);

/// Label on every WarmMachine: the HostPool it belongs to.
pub const POOL_LABEL: &str = "sandbox.hero.dev/hostpool";

/// What to do to a pool's warm machines.
#[derive(Debug, Default)]
pub struct Plan {
    /// How many new machines to build.
    pub create: u32,
    /// Machines to remove (unclaimed; removed only if unchanged since seen).
    pub delete: Vec<Arc<WarmMachine>>,
    /// The counts for the HostPool's status.
    pub status: WarmPoolStatus,
}

/// Whether `m` was built for the warm pool as the pool asks for it now.
fn current_spec(m: &WarmMachine, pool: &HostPool, warm: &WarmPool) -> bool {
    m.spec.resources == pool.spec.per_tester
        && m.spec.neutral_name == (warm.names == WarmNames::Neutral)
        && m.spec.channel == warm.channel
        && app_set(&m.spec.apps) == app_set(&warm.apps)
}

/// Whether a Ready machine has every app at the channel's newest version (`newest` unknown:
/// yes).
fn up_to_date(m: &WarmMachine, newest: Option<&BTreeMap<String, String>>) -> bool {
    let Some(newest) = newest else { return true };
    let versions = m.status.as_ref().map(|s| &s.versions);
    versions.is_none_or(|v| {
        v.iter()
            .all(|(app, ver)| newest.get(app).is_none_or(|n| n == ver))
    })
}

fn ready_since(m: &WarmMachine) -> Option<k8s_openapi::jiff::Timestamp> {
    m.status.as_ref()?.ready_since.as_ref().map(|t| t.0)
}

/// Decides what to build and remove (pure). `machines` are the pool's WarmMachines as the
/// cache has them, `unseen` those created that the cache does not show yet (counted as being
/// built, so a lagging cache never makes a second one), `newest` the channel's newest versions
/// when known.
pub fn plan(
    pool: &HostPool,
    machines: &[Arc<WarmMachine>],
    unseen: u32,
    newest: Option<&BTreeMap<String, String>>,
) -> Plan {
    let warm = pool.spec.warm().unwrap_or_default();
    let desired = warm.size;
    let mut out = Plan::default();
    let (mut fresh, mut stale, mut building) = (Vec::new(), Vec::new(), Vec::new());
    for m in machines {
        if m.spec.claim.is_some() || m.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let phase = m.status.as_ref().map(|s| s.phase).unwrap_or_default();
        let current = current_spec(m, pool, &warm);
        match phase {
            WarmPhase::Failed => out.delete.push(m.clone()),
            WarmPhase::Ready if current && up_to_date(m, newest) => fresh.push(m.clone()),
            WarmPhase::Ready => stale.push(m.clone()),
            p if warming(p) && current => building.push(m.clone()),
            _ => out.delete.push(m.clone()),
        }
    }
    // Shrink: machines being built go first (the newest), then Ready ones (the newest).
    let excess = (fresh.len() + building.len()).saturating_sub(desired as usize);
    building.sort_by_key(|m| m.creation_timestamp().map(|t| t.0));
    fresh.sort_by_key(|m| ready_since(m));
    for _ in 0..excess {
        match building.pop().or_else(|| fresh.pop()) {
            Some(m) => out.delete.push(m),
            None => break,
        }
    }
    // Outdated machines stay claimable until enough up-to-date ones are Ready.
    let keep_stale = (desired as usize).saturating_sub(fresh.len());
    stale.sort_by_key(|m| ready_since(m));
    let outdated = stale.len();
    out.delete.extend(stale.iter().skip(keep_stale).cloned());
    let have = (fresh.len() + building.len()) as u32 + unseen;
    out.create = desired.saturating_sub(have).min(
        warm.max_building
            .saturating_sub(building.len() as u32 + unseen),
    );
    out.status = WarmPoolStatus {
        desired,
        ready: (fresh.len() + outdated.min(keep_stale)) as u32,
        warming: building.len() as u32 + unseen,
        outdated: outdated.min(keep_stale) as u32,
        message: (fresh.len() < desired as usize).then(|| {
            format!(
                "{} of {desired} ready; {} being built{}",
                fresh.len(),
                building.len(),
                if outdated > 0 {
                    format!(
                        ", {} outdated kept until replaced",
                        outdated.min(keep_stale)
                    )
                } else {
                    String::new()
                }
            )
        }),
    };
    out
}

/// Builds and removes warm machines as [`plan`] says; returns the counts for the status.
pub async fn keep(ctx: &Context, pool: &HostPool) -> Result<Option<WarmPoolStatus>> {
    let ns = pool
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = pool.name_any();
    let Some(stores) = ctx.stores.get() else {
        return Ok(None);
    };
    // Deciding from a cache that has not listed yet (just after a start) would build the whole
    // pool a second time.
    if tokio::time::timeout(Duration::from_secs(5), stores.warm.wait_until_ready())
        .await
        .is_err()
    {
        return Err(Error::Stale);
    }
    let machines: Vec<Arc<WarmMachine>> = stores
        .warm
        .state()
        .into_iter()
        .filter(|m| m.namespace().as_deref() == Some(ns.as_str()) && m.spec.host_pool == name)
        .collect();
    let warm = pool.spec.warm();
    if warm.is_none() && machines.is_empty() {
        return Ok(None);
    }
    let newest = match &warm {
        Some(w) => match ctx.grid("catalog", ctx.grid.catalog.catalog()).await {
            Ok(c) => c
                .channels
                .get(&crate::tester::grid_channel(w.channel))
                .cloned(),
            Err(e) => {
                tracing::warn!(hostpool = %name, error = %e, "reading the release catalog failed; not rolling the warm pool this time");
                None
            }
        },
        None => None,
    };
    let key = format!("{ns}/{name}");
    let unseen = {
        let mut created = ctx.warm_created.lock().expect("warm created lock");
        let list = created.entry(key.clone()).or_default();
        list.retain(|(n, at)| {
            at.elapsed() < UNSEEN_FOR && !machines.iter().any(|m| m.name_any() == *n)
        });
        list.len() as u32
    };
    let plan = plan(pool, &machines, unseen, newest.as_ref());
    let api: Api<WarmMachine> = Api::namespaced(ctx.client.clone(), &ns);
    for m in &plan.delete {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: m.uid(),
                resource_version: m.resource_version(),
            }),
            ..Default::default()
        };
        ctx.kube_turn().await;
        match api.delete(&m.name_any(), &params).await {
            Ok(_) => {}
            // Changed since (claimed a moment ago) or gone: the next pass decides again.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(e) => {
                return Err(Error::Kube {
                    action: "removing a warm machine",
                    source: e,
                });
            }
        }
    }
    if let Some(warm) = &warm {
        for _ in 0..plan.create {
            let machine = WarmMachine {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{name}-warm-")),
                    namespace: Some(ns.clone()),
                    labels: Some(BTreeMap::from([(POOL_LABEL.to_string(), name.clone())])),
                    owner_references: Some(vec![
                        pool.controller_owner_ref(&())
                            .ok_or(Error::MissingField("metadata.uid"))?,
                    ]),
                    ..Default::default()
                },
                spec: WarmMachineSpec {
                    host_pool: name.clone(),
                    resources: pool.spec.per_tester.clone(),
                    channel: warm.channel,
                    apps: warm.apps.clone(),
                    neutral_name: warm.names == WarmNames::Neutral,
                    claim: None,
                },
                status: None,
            };
            ctx.kube_turn().await;
            let made = api
                .create(&PostParams::default(), &machine)
                .await
                .map_err(|e| Error::Kube {
                    action: "creating a warm machine",
                    source: e,
                })?;
            ctx.warm_created
                .lock()
                .expect("warm created lock")
                .entry(key.clone())
                .or_default()
                .push((made.name_any(), Instant::now()));
        }
    }
    let mut status = plan.status;
    status.warming += plan.create;
    for (state, n) in [
        ("desired", status.desired),
        ("ready", status.ready),
        ("warming", status.warming),
        ("outdated", status.outdated),
    ] {
        ctx.metrics
            .warm_machines
            .with_label_values(&[&ns, &name, state])
            .set(i64::from(n));
    }
    Ok(Some(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{App, Channel, HostPoolSpec, TesterResources, WarmMachineStatus};
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

    fn pool(size: u32, max_building: u32) -> HostPool {
        HostPool::new(
            "pool",
            HostPoolSpec {
                nodes: vec![1],
                farm: None,
                per_tester: TesterResources::default(),
                placement: Default::default(),
                warm_pool_size: 0,
                warm_pool: Some(WarmPool {
                    size,
                    channel: Channel::Stable,
                    apps: App::default_set(),
                    max_building,
                    names: Default::default(),
                }),
                gateway_nodes: vec![],
                gateway_farms: vec![],
                remediation: Default::default(),
            },
        )
    }

    fn machine(name: &str, phase: WarmPhase, cockpit: &str) -> Arc<WarmMachine> {
        let mut m = WarmMachine::new(
            name,
            WarmMachineSpec {
                host_pool: "pool".into(),
                resources: TesterResources::default(),
                channel: Channel::Stable,
                apps: App::default_set(),
                neutral_name: false,
                claim: None,
            },
        );
        m.status = Some(WarmMachineStatus {
            phase,
            versions: BTreeMap::from([("cockpit".to_string(), cockpit.to_string())]),
            ready_since: (phase == WarmPhase::Ready).then(|| Time(Timestamp::now())),
            ..Default::default()
        });
        Arc::new(m)
    }

    fn names(v: &[Arc<WarmMachine>]) -> Vec<String> {
        v.iter().map(|m| m.name_any()).collect()
    }

    fn newest(v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("cockpit".to_string(), v.to_string())])
    }

    #[test]
    fn an_empty_pool_is_filled_within_the_build_budget_and_the_unseen_count_as_building() {
        let p = plan(&pool(5, 2), &[], 0, None);
        assert_eq!((p.create, p.delete.len()), (2, 0));
        // Two created a moment ago that the cache does not show yet: nothing more now.
        let p = plan(&pool(5, 2), &[], 2, None);
        assert_eq!(p.create, 0);
        assert_eq!(p.status.warming, 2);
        let ready = [machine("a", WarmPhase::Ready, "1")];
        let p = plan(&pool(2, 2), &ready, 0, Some(&newest("1")));
        assert_eq!((p.create, p.status.ready, p.status.desired), (1, 1, 2));
        assert!(p.status.message.is_some(), "short of desired says so");
    }

    #[test]
    fn a_release_replaces_machines_only_once_their_replacements_are_ready() {
        let old = [
            machine("a", WarmPhase::Ready, "1"),
            machine("b", WarmPhase::Ready, "1"),
        ];
        // A newer version: build one (budget 1), remove nothing yet.
        let p = plan(&pool(2, 1), &old, 0, Some(&newest("2")));
        assert_eq!((p.create, p.delete.len()), (1, 0));
        assert_eq!((p.status.ready, p.status.outdated), (2, 2));
        // One replacement ready: one old machine goes, another replacement is built.
        let mut now = old.to_vec();
        now.push(machine("c", WarmPhase::Ready, "2"));
        let p = plan(&pool(2, 1), &now, 0, Some(&newest("2")));
        assert_eq!(p.create, 1);
        assert_eq!(p.delete.len(), 1);
        assert_eq!(p.status.ready, 2, "still two to claim");
        // The catalog unreadable: no roll.
        let p = plan(&pool(2, 1), &old, 0, None);
        assert_eq!((p.create, p.delete.len()), (0, 0));
    }

    #[test]
    fn shrinking_removes_machines_being_built_first_and_failed_ones_always() {
        let all = [
            machine("ready", WarmPhase::Ready, "1"),
            machine("building", WarmPhase::Installing, ""),
            machine("broken", WarmPhase::Failed, ""),
        ];
        let p = plan(&pool(1, 2), &all, 0, Some(&newest("1")));
        assert_eq!(names(&p.delete), ["broken", "building"]);
        assert_eq!(p.create, 0);
        // Size 0 (the warm pool turned off): everything unclaimed goes.
        let mut off = pool(0, 2);
        off.spec.warm_pool = None;
        let p = plan(&off, &all, 0, None);
        assert_eq!(p.delete.len(), 3);
    }

    #[test]
    fn claimed_machines_and_those_of_another_spec_are_handled_apart() {
        let mut claimed = (*machine("taken", WarmPhase::Ready, "1")).clone();
        claimed.spec.claim = Some(crate::resources::WarmClaim {
            tester: "t".into(),
            tester_uid: "u".into(),
        });
        let mut other = (*machine("small", WarmPhase::Installing, "")).clone();
        other.spec.resources.disk_gib = 10;
        let p = plan(&pool(1, 1), &[Arc::new(claimed), Arc::new(other)], 0, None);
        assert_eq!(
            names(&p.delete),
            ["small"],
            "the claimed one is never touched"
        );
        assert_eq!(p.create, 1);
    }
}
