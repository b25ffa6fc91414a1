//! The simulator's listeners: the router that calls every face, and start/stop of the API, the
//! gateway, the engines and the VMs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::error::StartError;
use crate::state::Sim;
use crate::store::Store;
use crate::wire::GridInfo;

/// Start options (the CLI's overrides of the config).
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// API address override.
    pub listen: Option<String>,
    /// Database override.
    pub db: Option<PathBuf>,
    /// Keep the database in memory (tests).
    pub in_memory: bool,
    /// Empty the database first.
    pub reset: bool,
    /// Profile override.
    pub profile: Option<crate::timing::Profile>,
    /// Time scale override.
    pub time_scale: Option<f64>,
}

/// A running gridshim.
pub struct Running {
    /// API address.
    pub addr: SocketAddr,
    /// Gateway address.
    pub gateway_addr: SocketAddr,
    /// The simulator.
    pub sim: Arc<Sim>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("gateway_addr", &self.gateway_addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops every listener (API, gateway, engines, VMs) so the same addresses can be bound
    /// again, e.g. by a restarted gridshim over the same database.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.sim.vms.stop_all();
        self.sim.engines.stop_all();
        self.sim.stop_queues();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts gridshim: loads state, binds the API, the gateway, the engines, restarts the VMs'
/// listeners and resumes queued deployments.
pub async fn start(mut cfg: Config, opts: StartOptions) -> Result<Running, StartError> {
    if let Some(l) = opts.listen {
        cfg.listen = l;
    }
    if let Some(p) = opts.profile {
        cfg.profile = p;
    }
    if let Some(s) = opts.time_scale {
        cfg.time_scale = s;
    }
    let db = if opts.in_memory {
        None
    } else {
        opts.db
            .or_else(|| cfg.db.clone().map(|p| cfg.resolve(&p)))
            .or_else(|| Some(PathBuf::from("gridshim.db")))
    };
    let store = Store::open(db.as_deref(), opts.reset)?;
    let vm_root = crate::vm::root(db.as_deref(), opts.reset)?;
    let sim = Sim::new(cfg, store, vm_root)?;
    let mut tasks = Vec::new();

    let listener = tokio::net::TcpListener::bind(&sim.cfg.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: sim.cfg.listen.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    let gw = tokio::net::TcpListener::bind(&sim.cfg.gateway.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: sim.cfg.gateway.listen.clone(),
            source,
        })?;
    let gateway_addr = gw
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    *sim.gateway_addr.lock().expect("gateway lock") = Some(gateway_addr);
    *sim.api_addr.lock().expect("api lock") = Some(addr);

    let app = router(sim.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "api server stopped");
        }
    }));
    let gw_app = crate::dataplane::gateway_router(sim.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(gw, gw_app).await {
            tracing::error!(error = %e, "gateway stopped");
        }
    }));
    crate::engines::start_all(&sim).await;
    crate::node::resume(&sim).await;
    tracing::info!(%addr, %gateway_addr, profile = ?sim.timing.profile, scale = sim.timing.scale, "gridshim started");
    Ok(Running {
        addr,
        gateway_addr,
        sim,
        tasks,
    })
}

async fn info(axum::extract::State(sim): axum::extract::State<Arc<Sim>>) -> Json<GridInfo> {
    let gateway_port = sim
        .gateway_addr
        .lock()
        .expect("gateway lock")
        .map(|a| a.port())
        .unwrap_or_default();
    Json(GridInfo {
        gateway_port,
        agent_port: sim.cfg.private_network.agent_port,
        web_port: sim.cfg.private_network.web_port,
        profile: match sim.timing.profile {
            crate::timing::Profile::Instant => "instant".into(),
            crate::timing::Profile::Realistic => "realistic".into(),
        },
        time_scale: sim.timing.scale,
    })
}

/// The API router: every face plus admin and inspection.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/info", axum::routing::get(info))
        .merge(crate::chain::routes())
        .merge(crate::proxy::routes())
        .merge(crate::node::routes())
        .merge(crate::relay::routes())
        .merge(crate::dataplane::routes())
        .merge(crate::engines::routes())
        .merge(crate::catalog::routes())
        .merge(crate::control::routes())
        .merge(crate::inspect::routes())
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            count_request,
        ))
        .with_state(sim)
}

/// Counts a request to one of the grid's faces. The relay's websocket is not counted: each
/// command it carries is (see `relay`), so counts stay comparable with the HTTP node face.
async fn count_request(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    let simulator_only = ["/admin", "/inspect", "/healthz", "/info", "/relay"]
        .iter()
        .any(|p| path.starts_with(p));
    if !simulator_only {
        sim.requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    next.run(req).await
}
