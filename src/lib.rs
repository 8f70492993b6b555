//! apimount: mounts Lambda-backed services on one shared API Gateway REST API
//! from a folder of small manifests, and keeps the gateway in line with them.
//!
//! Layers, from the inside out (each uses only those above it):
//! - [`manifest`]: the ServiceMount format, its parsing and validation (pure);
//! - [`plan`]: the observed gateway, ownership and derived names, the planner,
//!   the deploy decision and the status vocabulary (pure: no I/O, no SDK);
//! - [`aws`]: the AWS adapter, the only module that uses the AWS SDK;
//! - [`source`]: reads manifests from a folder or an S3 prefix into a snapshot;
//! - [`reconcile`]: one pass in typed phases: observe, desire, plan, apply, deploy;
//! - [`controller`]: the long-running loop, leader lease, admin endpoint, metrics;
//! - [`cli`]: what the one-shot commands print and their exit codes;
//! - [`settings`]: checks of flags and environment values;
//! - [`errors`]: how an error and its causes are shown on one line.
#![forbid(unsafe_code)]

pub mod aws;
pub mod cli;
pub mod controller;
pub mod errors;
pub mod manifest;
pub mod plan;
pub mod reconcile;
pub mod settings;
pub mod source;
