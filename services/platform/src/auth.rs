//! Bearer-token authentication, as one tower layer in front of every
//! service.
//!
//! The layer resolves `authorization: Bearer <token>` to a [`Principal`]
//! (subject, role, municipality) and puts it in the request extensions,
//! where service adapters find it with [`Principal::of`]. Health checks and
//! reflection are open so that probes and tooling work without a token.
//! Authorisation — which role may call what, and tenancy — is decided by
//! each service with [`Principal::require`] and [`Principal::check_tenant`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use secrecy::ExposeSecret;
use serde::Deserialize;
use tonic::Status;
use tower::{Layer, Service};

use crate::config::TokenConfig;
use crate::error::ServiceError;
use crate::types::MunicipalityCode;

/// What a principal is allowed to do, by kind of client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the municipality's site: every operation.
    Admin,
    /// Counter staff: calls, service, transfers.
    Staff,
    /// A counter supervisor (責任者) at the POS register: what staff may do
    /// there, plus the money operations that need a second person — voids,
    /// refunds and resolving a payment whose outcome is unknown. Other
    /// services do not grant it anything (a supervisor who also serves at
    /// a counter holds a staff token for that).
    Supervisor,
    /// An edge gateway or kiosk: issues tickets, follows events.
    Device,
    /// A display or board: reads only.
    Display,
    /// A neighbouring system (reservations, web): reads, issues tickets.
    Integrator,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Supervisor => "supervisor",
            Role::Device => "device",
            Role::Display => "display",
            Role::Integrator => "integrator",
        })
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who, e.g. `staff-suzuki`; safe to log.
    pub subject: String,
    /// What kind of client.
    pub role: Role,
    /// The only municipality whose data it may touch.
    pub municipality: MunicipalityCode,
}

impl Principal {
    /// The principal the auth layer attached to a request.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Principal, ServiceError> {
        request
            .extensions()
            .get::<Principal>()
            .ok_or(ServiceError::Unauthenticated("missing credentials"))
    }

    /// Fails unless the principal holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ServiceError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied {
                reason: "ROLE_NOT_ALLOWED",
                message: format!("role {} may not do this", self.role),
            })
        }
    }

    /// Fails unless `municipality` is the principal's own.
    pub fn check_tenant(&self, municipality: &MunicipalityCode) -> Result<(), ServiceError> {
        if &self.municipality == municipality {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied {
                reason: "OTHER_MUNICIPALITY",
                message: format!("principal may not access municipality {municipality}"),
            })
        }
    }
}

/// The tokens a server accepts.
#[derive(Clone, Default)]
pub struct TokenRegistry {
    tokens: Arc<HashMap<String, Principal>>,
}

impl fmt::Debug for TokenRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRegistry")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl TokenRegistry {
    /// A registry of the configured tokens.
    pub fn new(tokens: &[TokenConfig]) -> Self {
        let tokens = tokens
            .iter()
            .map(|t| {
                (
                    t.token.expose_secret().to_owned(),
                    Principal {
                        subject: t.subject.clone(),
                        role: t.role,
                        municipality: t.municipality.clone(),
                    },
                )
            })
            .collect();
        Self {
            tokens: Arc::new(tokens),
        }
    }

    /// Resolves the `authorization` header.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, ServiceError> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(ServiceError::Unauthenticated("missing bearer token"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ServiceError::Unauthenticated(
                "malformed authorization header",
            ))?;
        self.tokens
            .get(token.trim())
            .cloned()
            .ok_or(ServiceError::Unauthenticated("unknown bearer token"))
    }
}

/// Paths served without credentials.
fn is_public(path: &str, public_prefixes: &[&'static str]) -> bool {
    path.starts_with("/grpc.health.v1.")
        || path.starts_with("/grpc.reflection.")
        || public_prefixes
            .iter()
            .any(|prefix| path.starts_with(prefix))
}

/// The tower layer that authenticates every request.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    registry: TokenRegistry,
    public_prefixes: Arc<[&'static str]>,
}

impl AuthLayer {
    /// A layer that accepts the tokens of `registry`.
    pub fn new(registry: TokenRegistry) -> Self {
        Self {
            registry,
            public_prefixes: Arc::new([]),
        }
    }

    /// Also serves paths starting with one of `prefixes` without
    /// credentials: the public web pages (signage), which are for anyone
    /// on the floor. A prefix must end with `/` and never be a gRPC
    /// service path.
    pub fn with_public_prefixes(mut self, prefixes: &[&'static str]) -> Self {
        self.public_prefixes = prefixes.into();
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            registry: self.registry.clone(),
            public_prefixes: self.public_prefixes.clone(),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    inner: S,
    registry: TokenRegistry,
    public_prefixes: Arc<[&'static str]>,
}

impl<S, B> Service<http::Request<B>> for Authenticate<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if is_public(request.uri().path(), &self.public_prefixes) {
            return Either::Left(self.inner.call(request));
        }
        match self.registry.authenticate(request.headers()) {
            Ok(principal) => {
                tracing::Span::current().record("subject", principal.subject.as_str());
                request.extensions_mut().insert(principal);
                Either::Left(self.inner.call(request))
            }
            Err(error) => Either::Right(ready(Ok(Status::from(error).into_http()))),
        }
    }
}
