//! The resource arithmetic of nodes: what a workload takes, what a node holds.

use super::*;

/// Resources held on a node: workloads of live deployments that are `ok` or `paused` (a
/// deployment in error holds nothing).
pub fn node_used(w: &World, node_id: u32) -> Resources {
    let mut used = Resources::default();
    for d in w.deployments.values().filter(|d| d.node_id == node_id) {
        for wl in &d.deployment.workloads {
            if matches!(wl.result.state, WorkloadState::Ok | WorkloadState::Paused) {
                used = used.plus(workload_resources(&wl.data));
            }
        }
    }
    used
}

/// What a workload takes from its node.
pub fn workload_resources(d: &WorkloadData) -> Resources {
    match d {
        WorkloadData::Zmount(z) => Resources {
            sru: z.size,
            ..Default::default()
        },
        WorkloadData::ZmachineLight(z) => Resources {
            cru: u64::from(z.compute_capacity.cpu),
            mru: z.compute_capacity.memory,
            sru: z.size,
            hru: 0,
        },
        _ => Resources::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridapi::GIB;

    fn rec(node_id: u32, cid: u64, state: WorkloadState, data: WorkloadData) -> DeploymentRec {
        let mut w = Workload::new("w", data);
        w.result.state = state;
        DeploymentRec {
            node_id,
            deployment: Deployment {
                version: 0,
                twin_id: 1,
                contract_id: cid,
                metadata: String::new(),
                description: String::new(),
                expiration: 0,
                signature_requirement: SignatureRequirement::by(1),
                workloads: vec![w],
            },
            changes: vec![],
        }
    }

    #[test]
    fn used_counts_only_deployed_workloads_of_the_node() {
        let mut w = World::default();
        let disk = |size| WorkloadData::Zmount(Zmount { size });
        w.deployments
            .insert(1, rec(5, 1, WorkloadState::Ok, disk(10 * GIB)));
        w.deployments
            .insert(2, rec(5, 2, WorkloadState::Error, disk(7 * GIB)));
        w.deployments
            .insert(3, rec(5, 3, WorkloadState::Paused, disk(GIB)));
        w.deployments
            .insert(4, rec(6, 4, WorkloadState::Ok, disk(100 * GIB)));
        assert_eq!(
            node_used(&w, 5).sru,
            11 * GIB,
            "error holds nothing, paused still holds"
        );
        assert_eq!(node_used(&w, 6).sru, 100 * GIB);
    }

    #[test]
    fn zmachine_takes_cpu_memory_and_rootfs() {
        let r = workload_resources(&WorkloadData::ZmachineLight(ZmachineLight {
            flist: "f".into(),
            network: ZmachineNetwork {
                interfaces: vec![],
                mycelium: MyceliumAttachment {
                    network: "n".into(),
                    seed: String::new(),
                },
            },
            size: 20 * GIB,
            compute_capacity: ComputeCapacity {
                cpu: 2,
                memory: 4 * GIB,
            },
            mounts: vec![],
            entrypoint: String::new(),
            env: Default::default(),
            corex: false,
        }));
        assert_eq!(
            r,
            Resources {
                cru: 2,
                mru: 4 * GIB,
                sru: 20 * GIB,
                hru: 0
            }
        );
    }
}
