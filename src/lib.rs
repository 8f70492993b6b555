//! apimount: mounts Lambda-backed services on one shared API Gateway REST API
//! from a folder of small manifests, and keeps the gateway in line with them.
//!
//! Layout, from the inside out:
//! - [`manifest`]: the ServiceMount format and its validation (pure);
//! - [`source`]: reads a folder of manifests into a snapshot;
//! - [`model`]: the observed gateway, ownership markers, derived names (pure);
//! - [`plan`]: desired + observed → changes (pure);
//! - [`aws`]: the only module that talks to AWS;
//! - [`reconcile`]: one pass: observe, plan, apply, deploy;
//! - [`report`]: renders plans and pass results for people.
#![forbid(unsafe_code)]

pub mod admin;
pub mod aws;
pub mod controller;
pub mod journal;
pub mod lease;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod pacing;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod s3source;
pub mod schema;
pub mod settings;
pub mod source;
pub mod status;
