//! The controller's error type. Every variant says what failed; `label()` gives the short,
//! bounded metric label errors are counted by.

use gridapi::GridError;

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

    /// A shared engine or its token store failed.
    #[error("shared engine {engine}: {source}")]
    Engine {
        /// The SharedEngine's name.
        engine: String,
        /// What went wrong (never carries a token).
        #[source]
        source: crate::engines::EngineError,
    },

    /// A call to the Forge (the identity provider) failed.
    #[error("{source}")]
    Forge {
        /// What went wrong (never carries a token, password or client secret).
        #[source]
        source: crate::forge::ForgeError,
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

    /// A lock of the controller's own state was poisoned by a panic elsewhere.
    #[error("internal state {0} is unusable after a panic; restart the controller")]
    Poisoned(&'static str),

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
                gridapi::ErrorCategory::RetryLater => "grid_retry_later",
                gridapi::ErrorCategory::Conflict => "grid_conflict",
                gridapi::ErrorCategory::NotFound => "grid_not_found",
                gridapi::ErrorCategory::Capacity => "grid_capacity",
                gridapi::ErrorCategory::Fatal => "grid_fatal",
            },
            Error::Engine { .. } => "engine",
            Error::Forge { .. } => "forge",
            Error::Probe { .. } => "probe",
            Error::Email(_) => "email",
            Error::MissingField(_) => "missing_field",
            Error::DeletionPending(_) => "deletion_pending",
            Error::Stale => "stale",
            Error::Poisoned(_) => "poisoned",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

impl Error {
    /// Whether the failure is transient (a retry later may succeed, the call may even have
    /// landed): the step's condition says so and the pass backs off, without an error.
    pub fn is_retry_later(&self) -> bool {
        match self {
            Error::Grid { source, .. } => source.is_retry_later(),
            Error::Engine { source, .. } => source.is_retry_later(),
            Error::Forge { source } => source.is_retry_later(),
            _ => false,
        }
    }

    /// Whether retrying cannot help until the operator changes something: the grid refused
    /// the request as invalid or unauthorized.
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Grid { source, .. } => source.category() == gridapi::ErrorCategory::Fatal,
            Error::Engine { source, .. } => !source.is_retry_later(),
            Error::Forge { source } => !source.is_retry_later(),
            _ => false,
        }
    }
}

impl Error {
    /// What the operator must change when retrying cannot help, to go with the error in the
    /// step's condition.
    pub fn remedy(&self) -> Option<&'static str> {
        use gridapi::ErrorCode as C;
        match self {
            Error::Grid { source, .. } if self.is_fatal() => Some(match source.code() {
                C::Unauthenticated | C::Unauthorized | C::TwinNotAuthorizedToCancelContract => {
                    "the grid or the machine's agent refused the controller's credentials: check GRID_MNEMONIC and GRID_KEY_TYPE (the account must have a twin that publishes this key), GRID_TWIN_ID and GRID_TWIN_SECRET with gridshim, and that the VM was deployed with this controller's public key (its agent-signing key Secret), then the controller retries"
                }
                _ => {
                    "the grid refused the request as invalid: check the Tester's spec and its HostPool; retried after a long back-off or at the next change"
                }
            }),
            Error::Forge {
                source: crate::forge::ForgeError::Unauthorized { .. },
            } => Some(
                "mint a new administrator token at the Forge (scope all) and put it in the Secret behind FORGE_TOKEN; the controller retries",
            ),
            Error::Forge { .. } if self.is_fatal() => Some(
                "check the Tester's accountName and email against the Forge's rules; retried after a long back-off or at the next change",
            ),
            Error::Engine { .. } if self.is_fatal() => Some(
                "check the SharedEngine's url, tokenStore.url and tokenStore.credentials; retried after a long back-off or at the next change",
            ),
            _ => None,
        }
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    /// A step's own error as it is; a stale cached copy (the JSON patch that adds the finalizer
    /// tests the old list, and fails) as `Stale`, so the next pass sees the newer object.
    fn from(e: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(e) | F::CleanupFailed(e) => e,
            F::AddFinalizer(kube::Error::Api(s)) if s.code == 422 || s.code == 409 => Error::Stale,
            other => Error::Finalizer(Box::new(other)),
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

impl From<crate::forge::ForgeError> for Error {
    fn from(source: crate::forge::ForgeError) -> Self {
        Error::Forge { source }
    }
}

/// The controller's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
