//! Use cases written over the ports. HTTP handlers call exactly one of these per request.

mod accounts;
mod analysis;
mod auth;
mod calls;
mod live;
mod placement;

pub use accounts::{AccountError, ClientAccounts};
pub use analysis::{
    AnalysisError, MissedReportPolicy, MissedReportRound, PostCallAnalysis, ReportOutcome,
};
pub use auth::{AuthError, Authenticated, Authentication, UnauthorizedReason};
pub use calls::{CallError, CallHistory, Dashboard};
pub use live::{LiveCalls, StreamContext, StreamRefusal};
pub use placement::{CallPlacement, CallRequest, PlacedCallIds, PlacementError};
