//! apimount's integration tests, in one test binary (one link of the AWS
//! SDK for all of them). Each module is one area; everything that talks to
//! AWS runs against a real emulator started by the test (see `support`).
//!
//! Run one area with `cargo test --test integration daemon::`.

mod support;

mod accounts;
mod adopt_status;
mod core;
mod corpus;
mod daemon;
mod emulator_smoke;
mod iam;
mod isolation;
mod localstack_smoke;
mod neighbour;
mod never_dark;
mod outages;
mod pipeline;
mod releases;
mod resilience;
mod route_options;
mod schema;
mod tenants;
