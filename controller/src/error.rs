//! The controller's error type. Every variant says what failed; `label()` gives the short,
//! bounded metric label errors are counted by.

use gridshim::client::GridError;

/// What went wrong in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API call failed while {action}: {source}")]
    Kube {
        /// What the controller was doing.
        action: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },

    /// A call to the grid failed.
    #[error("grid call {call} failed: {source}")]
    Grid {
        /// The call, e.g. `create_name_contract`.
        call: &'static str,
        /// The grid's error (carries the grid's own text; never a secret).
        #[source]
        source: GridError,
    },

    /// An HTTP probe of a tester's machine failed.
    #[error("probe of {what} failed: {reason}")]
    Probe {
        /// What was probed (a URL without credentials).
        what: String,
        /// Why.
        reason: String,
    },

    /// The welcome email could not be sent.
    #[error("sending the welcome email failed: {0}")]
    Email(String),

    /// The object lacks something the API server always sets (name, namespace, uid).
    #[error("object is missing {0}")]
    MissingField(&'static str),

    /// The Tester changed while the pass ran (it started from a stale cached copy); the pass
    /// is dropped and runs again on the newer object.
    #[error("the Tester changed while this pass ran; reconciling again on the newer version")]
    Stale,

    /// Deletion cannot finish yet; the message says what it waits for.
    #[error("{0}")]
    DeletionPending(String),

    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short label for metrics: bounded cardinality, no free text.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Grid { source, .. } => match source.category() {
                gridshim::client::ErrorCategory::RetryLater => "grid_retry_later",
                gridshim::client::ErrorCategory::Conflict => "grid_conflict",
                gridshim::client::ErrorCategory::NotFound => "grid_not_found",
                gridshim::client::ErrorCategory::Capacity => "grid_capacity",
                gridshim::client::ErrorCategory::Fatal => "grid_fatal",
            },
            Error::Probe { .. } => "probe",
            Error::Email(_) => "email",
            Error::MissingField(_) => "missing_field",
            Error::DeletionPending(_) => "deletion_pending",
            Error::Stale => "stale",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

/// Attaches what the controller was doing to a Kubernetes API error.
pub trait KubeContext<T> {
    /// Wraps the error with `action`.
    fn kube(self, action: &'static str) -> Result<T, Error>;
}

impl<T> KubeContext<T> for Result<T, kube::Error> {
    fn kube(self, action: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::Kube { action, source })
    }
}

/// Attaches the call name to a grid error.
pub trait GridContext<T> {
    /// Wraps the error with `call`.
    fn grid(self, call: &'static str) -> Result<T, Error>;
}

impl<T> GridContext<T> for Result<T, GridError> {
    fn grid(self, call: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::Grid { call, source })
    }
}

/// The controller's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
