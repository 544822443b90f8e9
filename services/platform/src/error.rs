//! The one place where service errors become gRPC statuses.
//!
//! Domain code returns [`ServiceError`]; adapters call
//! `Status::from(error)`. Each variant maps to one status code and carries
//! `google.rpc` details: `BadRequest` field violations for bad input,
//! `ErrorInfo` with a stable machine-readable reason for everything, and
//! `ResourceInfo`, `PreconditionFailure` or `QuotaFailure` where they
//! apply. Messages are lowercase and never contain personal data.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The `ErrorInfo.domain` of every Madoguchi error.
pub const ERROR_DOMAIN: &str = "madoguchi.city";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field, e.g. `category` or `business_day.month`.
    pub field: String,
    /// What is wrong with it, for a developer.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Collects every violation of a request before failing, so a client
/// learns about all its mistakes at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation::new(field, description));
    }

    /// Records the error of a parse, if any, and returns its value.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    /// `Ok(())` when nothing was recorded, else the invalid-argument error.
    pub fn finish(self) -> Result<(), ServiceError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::InvalidArgument(self.0))
        }
    }
}

/// One failed precondition of a [`ServiceError::FailedPreconditions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// The `PreconditionFailure.Violation.type`, e.g. a reason name.
    pub kind: String,
    /// The part that fails, e.g. `lines[2]`.
    pub subject: String,
    /// Why, lowercase, without personal data.
    pub description: String,
}

/// Every way a Madoguchi request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed; each field that is wrong is listed.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<Violation>),
    /// A named resource does not exist.
    #[error("{resource_type} not found: {name}")]
    NotFound {
        /// Kind of resource, e.g. `ticket`.
        resource_type: &'static str,
        /// Resource name as given.
        name: String,
    },
    /// The resource is not in a state that allows the operation.
    #[error("{message}")]
    FailedPrecondition {
        /// Stable reason, e.g. `TICKET_NOT_CALLED`.
        reason: &'static str,
        /// What is wrong, for a developer.
        message: String,
        /// The resource the precondition is about.
        subject: String,
    },
    /// Several parts of one request each fail a precondition (e.g. the
    /// refused lines of a certificate request): one `PreconditionFailure`
    /// violation per part.
    #[error("{message}")]
    FailedPreconditions {
        /// Stable reason, e.g. `NOT_ENTITLED`.
        reason: &'static str,
        /// What is wrong, for a developer.
        message: String,
        /// The resource the preconditions are about.
        subject: String,
        /// One per failing part.
        violations: Vec<PreconditionViolation>,
    },
    /// A uniqueness conflict the caller should not retry.
    #[error("{message}")]
    AlreadyExists {
        /// Stable reason.
        reason: &'static str,
        /// What conflicts.
        message: String,
    },
    /// The caller's etag is stale; read again and retry.
    #[error("etag mismatch on {name}")]
    Aborted {
        /// Resource name.
        name: String,
    },
    /// A quota or a finite range is used up.
    #[error("{message}")]
    ResourceExhausted {
        /// Stable reason, e.g. `DAILY_QUOTA_REACHED`.
        reason: &'static str,
        /// What is exhausted, e.g. the category's resource name.
        subject: String,
        /// For a developer.
        message: String,
    },
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Valid credentials, but not for this resource or operation.
    #[error("{message}")]
    PermissionDenied {
        /// Stable reason, e.g. `OTHER_MUNICIPALITY`.
        reason: &'static str,
        /// For a developer.
        message: String,
    },
    /// The service is shutting down or its database is unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected storage failure. The detail is logged, not
    /// sent to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ServiceError {
    /// A single-field invalid-argument error.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![Violation::new(field, description)])
    }

    /// A failed precondition on `subject`.
    pub fn precondition(
        reason: &'static str,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
            subject: subject.into(),
        }
    }

    /// A missing resource.
    pub fn not_found(resource_type: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            resource_type,
            name: name.into(),
        }
    }

    /// The gRPC status code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::FailedPrecondition { .. } | Self::FailedPreconditions { .. } => {
                Code::FailedPrecondition
            }
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Aborted { .. } => Code::Aborted,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The `ErrorInfo.reason` of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::FailedPrecondition { reason, .. }
            | Self::FailedPreconditions { reason, .. }
            | Self::AlreadyExists { reason, .. }
            | Self::ResourceExhausted { reason, .. }
            | Self::PermissionDenied { reason, .. } => reason,
            Self::Aborted { .. } => "ETAG_MISMATCH",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(error: sea_orm::DbErr) -> Self {
        match &error {
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => {
                Self::Unavailable(error.to_string())
            }
            _ => Self::Internal(error.to_string()),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let code = error.code();
        let reason = error.reason();
        let mut details = ErrorDetails::new();
        let mut metadata = HashMap::new();
        let message = match &error {
            ServiceError::Internal(detail) => {
                // The detail may name tables or values; keep it server-side.
                tracing::error!(error = %detail, "internal error");
                "internal error".to_owned()
            }
            ServiceError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "service unavailable");
                "service unavailable, retry later".to_owned()
            }
            other => other.to_string(),
        };
        match &error {
            ServiceError::InvalidArgument(violations) => {
                details.set_bad_request(
                    violations
                        .iter()
                        .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                        .collect::<Vec<_>>(),
                );
            }
            ServiceError::NotFound {
                resource_type,
                name,
            } => {
                details.set_resource_info(*resource_type, name.clone(), "", "not found");
                metadata.insert("resource".to_owned(), name.clone());
            }
            ServiceError::FailedPrecondition {
                reason,
                message,
                subject,
            } => {
                details.add_precondition_failure_violation(
                    *reason,
                    subject.clone(),
                    message.clone(),
                );
                metadata.insert("resource".to_owned(), subject.clone());
            }
            ServiceError::FailedPreconditions {
                subject,
                violations,
                ..
            } => {
                for violation in violations {
                    details.add_precondition_failure_violation(
                        violation.kind.clone(),
                        violation.subject.clone(),
                        violation.description.clone(),
                    );
                }
                metadata.insert("resource".to_owned(), subject.clone());
            }
            ServiceError::ResourceExhausted {
                subject, message, ..
            } => {
                details.add_quota_failure_violation(subject.clone(), message.clone());
            }
            ServiceError::Aborted { name } => {
                metadata.insert("resource".to_owned(), name.clone());
            }
            _ => {}
        }
        details.set_error_info(reason, ERROR_DOMAIN, metadata);
        Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_violation() {
        let mut violations = Violations::new();
        violations.add("parent", "must name an office");
        violations.add("request_id", "must be a UUID");
        let status =
            Status::from(violations.finish().err().unwrap_or_else(|| {
                ServiceError::Internal("violations should not be empty".into())
            }));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["parent", "request_id"]);
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("INVALID_ARGUMENT")
        );
    }

    #[test]
    fn internal_detail_is_not_sent() {
        let status = Status::from(ServiceError::Internal("table visits: secret".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
