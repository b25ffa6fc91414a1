//! Step `Scheduled`: choose a node of the HostPool by real free disk and memory.

use std::time::{Duration, Instant};

use gridapi::proxy::{Limit, NodeFilter, NodeStatus};
use kube::Api;

use super::{Flow, Pass, conditions::SCHEDULED};
use crate::{
    context::{Context, PoolNodes},
    error::{KubeContext, Result},
    resources::{HostPool, Placement, Tester},
    scheduler::{Holding, Need, NodeView, place},
};

/// How old a node listing may be when a placement is decided from it. The ledger makes an old
/// listing safe (it subtracts what the listing does not show yet); a fresh one finds capacity
/// that others freed.
pub const LISTING_MAX_AGE: Duration = Duration::from_secs(5);

/// Owns `Scheduled`. Records the placement in the status before anything is created on the
/// grid, while holding the ledger, so two testers never take the same last place.
pub async fn schedule(pass: &mut Pass<'_>) -> Result<Flow> {
    let pool_name = pass.tester.spec.host_pool.clone();
    // From the watch's cache; from the API server when the cache has not seen it (yet).
    let pool = match pass.ctx.pool_of(pass.tester) {
        Some(pool) => Some(pool),
        None => {
            pass.ctx.kube_turn().await;
            let pools: Api<HostPool> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
            pools
                .get_opt(&pool_name)
                .await
                .kube("reading the Tester's HostPool")?
                .map(std::sync::Arc::new)
        }
    };
    let Some(pool) = pool else {
        pass.set(
            SCHEDULED,
            false,
            "HostPoolNotFound",
            &format!(
                "HostPool {pool_name:?} does not exist in namespace {:?}",
                pass.ns
            ),
        );
        return Ok(Flow::Requeue(Duration::from_secs(300)));
    };
    let need = need(pass.tester, &pool);

    if let Some(p) = pass.status.placement.clone() {
        let mut ledger = pass.ctx.ledger.lock().await;
        if ledger.holding(&pass.uid).is_none() {
            ledger.hold(
                &pass.uid,
                Holding {
                    node_id: p.node_id,
                    need,
                    counted_after: None,
                },
            );
        }
        drop(ledger);
        // Kept as the placement said it (a warm claim, or why it started cold).
        if !pass.is_true(SCHEDULED) {
            let msg = format!("placed on node {} of HostPool {pool_name}", p.node_id);
            pass.set(SCHEDULED, true, "Placed", &msg);
        }
        return Ok(Flow::Continue);
    }

    let cold = match super::warm_start::claim(pass, &pool, need).await? {
        Ok(()) => return Ok(Flow::Continue),
        Err(why) => why,
    };

    let key = format!("{}/{pool_name}", pass.ns);
    let listing = pool_nodes(pass.ctx, &key, &pool, LISTING_MAX_AGE).await?;
    let mut ledger = pass.ctx.ledger.lock().await;
    // Without gateway nodes the name proxy runs on the machine's own node, which then needs a
    // gateway domain; with them, any node of the pool will do.
    let own_gateway = listing.gateways.is_empty();
    let rooms: Vec<_> = ledger
        .rooms(&listing.nodes, listing.listed_at)
        .into_iter()
        .filter(|r| !own_gateway || r.node.domain.is_some())
        .collect();
    match place(&rooms, need, pool.spec.placement) {
        Ok(node_id) => {
            ledger.hold(
                &pass.uid,
                Holding {
                    node_id,
                    need,
                    counted_after: None,
                },
            );
            // The place is held in the ledger: no other tester takes it while the placement is
            // written, and the lock is not held across that write.
            drop(ledger);
            pass.status.placement = Some(Placement {
                node_id,
                cpu: need.cpu,
                memory_bytes: need.memory,
                disk_bytes: need.disk,
            });
            pass.status.host = Some(format!("node-{node_id}"));
            super::access::intend(pass).await?;
            let mut msg = format!("placed on node {node_id} of HostPool {pool_name}");
            if let (Some(why), Some(warm)) = (cold, pool.spec.warm()) {
                msg = format!("{msg}; {}", why.explain(&warm));
            }
            pass.set(SCHEDULED, true, "Placed", &msg);
            if let Err(e) = pass.persist().await {
                pass.ctx.ledger.lock().await.release(&pass.uid);
                pass.status.placement = None;
                pass.status.host = None;
                return Err(e);
            }
            if let Some(why) = cold {
                pass.ctx
                    .metrics
                    .cold_starts
                    .with_label_values(&[&pass.ns, &pool_name, why.reason()])
                    .inc();
            }
            Ok(Flow::Continue)
        }
        Err(why) => {
            let gib = |b: u64| b >> 30;
            let best = rooms
                .iter()
                .filter(|r| r.node.online)
                .max_by_key(|r| (r.disk, r.memory));
            let detail = match best {
                Some(r) => format!(
                    "the roomiest online node, {}, has {} GiB disk and {} GiB memory free",
                    r.node.node_id,
                    gib(r.disk),
                    gib(r.memory)
                ),
                None => format!("none of the pool's {} nodes is online", rooms.len()),
            };
            let msg = format!(
                "no node of HostPool {pool_name} fits {} GiB disk and {} GiB memory: {detail}; nothing was created on the grid, retrying when capacity changes",
                gib(need.disk),
                gib(need.memory)
            );
            pass.set(SCHEDULED, false, why.reason(), &msg);
            Ok(Flow::Requeue(Duration::from_secs(300)))
        }
    }
}

/// What the tester's machine needs: the Tester's overrides, else the pool's `perTester`.
pub fn need(tester: &Tester, pool: &HostPool) -> Need {
    let d = &pool.spec.per_tester;
    let o = tester.spec.resources.clone().unwrap_or_default();
    Need::from_gib(
        o.cpu.unwrap_or(d.cpu),
        o.memory_gib.unwrap_or(d.memory_gib),
        o.disk_gib.unwrap_or(d.disk_gib),
    )
}

/// The pool's nodes: the cached listing if younger than `max_age`, else a fresh one.
pub async fn pool_nodes(
    ctx: &Context,
    key: &str,
    pool: &HostPool,
    max_age: Duration,
) -> Result<PoolNodes> {
    if let Some(cached) = ctx.pools.lock().expect("pools lock").get(key).cloned()
        && cached.listed_at.elapsed() < max_age
    {
        return Ok(cached);
    }
    let listed_at = Instant::now();
    let nodes = list_pool_nodes(ctx, pool).await?;
    let gateways = gateway_nodes(ctx, pool).await?;
    let listing = PoolNodes {
        nodes,
        gateways,
        listed_at,
    };
    ctx.pools
        .lock()
        .expect("pools lock")
        .insert(key.to_string(), listing.clone());
    Ok(listing)
}

/// The pool's `gatewayNodes`, then every up and healthy gateway the proxy lists in its
/// `gatewayFarms`.
async fn gateway_nodes(ctx: &Context, pool: &HostPool) -> Result<Vec<u32>> {
    let mut out = pool.spec.gateway_nodes.clone();
    if !pool.spec.gateway_farms.is_empty() {
        let filter = NodeFilter {
            farm_ids: pool.spec.gateway_farms.clone(),
            status: vec![NodeStatus::Up],
            healthy: Some(true),
            ..NodeFilter::default()
        };
        let found = ctx
            .grid(
                "list_gateways",
                ctx.grid.proxy.gateways(&filter, Limit::page(1, 1000)),
            )
            .await?;
        for n in found.items {
            if !out.contains(&n.info.node_id) {
                out.push(n.info.node_id);
            }
        }
    }
    Ok(out)
}

async fn list_pool_nodes(ctx: &Context, pool: &HostPool) -> Result<Vec<NodeView>> {
    // The pool's farm, or exactly its listed nodes: the proxy filters, we page.
    let filter = match pool.spec.farm {
        Some(farm) => NodeFilter {
            farm_ids: vec![farm],
            ..NodeFilter::default()
        },
        None => NodeFilter {
            node_ids: pool.spec.nodes.clone(),
            ..NodeFilter::default()
        },
    };
    const PAGE: u32 = 1000;
    let mut out = Vec::new();
    for page in 1.. {
        let got = ctx
            .grid(
                "list_nodes",
                ctx.grid.proxy.nodes(&filter, Limit::page(page, PAGE)),
            )
            .await?;
        let n = got.items.len();
        out.extend(got.items.iter().map(NodeView::from_node));
        if n < PAGE as usize {
            break;
        }
    }
    // A listed id the grid does not know is reported as an offline node, not dropped.
    for id in &pool.spec.nodes {
        if !out.iter().any(|n| n.node_id == *id) {
            out.push(NodeView {
                node_id: *id,
                online: false,
                domain: None,
                free_memory: 0,
                free_disk: 0,
            });
        }
    }
    out.sort_by_key(|n| n.node_id);
    Ok(out)
}
