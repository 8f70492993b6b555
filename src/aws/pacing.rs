//! Client-side pacing: token buckets that keep apimount within API Gateway's
//! and Lambda's fixed control-plane quotas (per account and region), so a
//! large change does not trip throttling that every other tool in the
//! account would feel too. The quotas, from AWS's published API Gateway and
//! Lambda quota tables (see docs/OPERATIONS.md): CreateResource and
//! DeleteResource 5/s, GetResources 5 per 2 s, CreateDeployment 1 per 5 s,
//! API Gateway total 10/s with a burst of 40, Lambda control plane 15/s.
//!
//! Every call takes a token from the total bucket of its service and from
//! the bucket of its operation, if it has one. Waiting is async and fair
//! enough: callers queue on a mutex per bucket.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// GetResources, per second (5 per 2 s), per account and region.
pub const GET_RESOURCES_PER_SEC: f64 = 2.5;
/// Every API Gateway control-plane call, per second.
pub const APIGW_TOTAL_PER_SEC: f64 = 10.0;
/// Lambda's control plane (GetPolicy, AddPermission, RemovePermission), per second.
pub const LAMBDA_PER_SEC: f64 = 15.0;
/// CloudWatch's alarm writes, per second (the lowest of its alarm quotas).
pub const CLOUDWATCH_PER_SEC: f64 = 3.0;
/// GetFunction, per second.
pub const GET_FUNCTION_PER_SEC: f64 = 100.0;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64) -> Bucket {
        Bucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits until a token is available and takes it.
    pub async fn take(&self) {
        let mut s = self.state.lock().await;
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(s.1).as_secs_f64();
            s.0 = (s.0 + elapsed * self.rate).min(self.burst);
            s.1 = now;
            if s.0 >= 1.0 {
                s.0 -= 1.0;
                return;
            }
            let wait = (1.0 - s.0) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// Which quota an operation falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    GetResources,
    CreateResource,
    DeleteResource,
    CreateDeployment,
    /// Any other API Gateway call.
    ApiGateway,
    /// Lambda's permission and policy calls.
    Lambda,
    /// GetFunction (its own, larger quota).
    GetFunction,
    /// CloudWatch's alarm calls (DescribeAlarms 9/s; PutMetricAlarm and
    /// DeleteAlarms 3/s).
    CloudWatch,
}

/// The buckets of one process.
#[derive(Debug)]
pub struct Pacer {
    enabled: bool,
    apigw_total: Bucket,
    get_resources: Bucket,
    create_resource: Bucket,
    delete_resource: Bucket,
    create_deployment: Bucket,
    lambda: Bucket,
    get_function: Bucket,
    cloudwatch: Bucket,
}

impl Pacer {
    /// Pacing at AWS's published quotas.
    pub fn aws_quotas() -> Pacer {
        Pacer {
            enabled: true,
            apigw_total: Bucket::new(APIGW_TOTAL_PER_SEC, 40.0),
            get_resources: Bucket::new(GET_RESOURCES_PER_SEC, 5.0),
            create_resource: Bucket::new(5.0, 5.0),
            delete_resource: Bucket::new(5.0, 5.0),
            create_deployment: Bucket::new(0.2, 1.0),
            lambda: Bucket::new(LAMBDA_PER_SEC, LAMBDA_PER_SEC),
            get_function: Bucket::new(GET_FUNCTION_PER_SEC, GET_FUNCTION_PER_SEC),
            cloudwatch: Bucket::new(CLOUDWATCH_PER_SEC, CLOUDWATCH_PER_SEC),
        }
    }

    /// No pacing (for emulators and benchmarks of the raw call sequence).
    pub fn disabled() -> Pacer {
        Pacer {
            enabled: false,
            ..Pacer::aws_quotas()
        }
    }

    /// A new set of buckets, paced as this one is (for another account,
    /// whose quotas are its own).
    pub fn fresh(&self) -> Pacer {
        if self.enabled {
            Pacer::aws_quotas()
        } else {
            Pacer::disabled()
        }
    }

    pub async fn take(&self, op: Op) {
        if !self.enabled {
            return;
        }
        let specific = match op {
            Op::GetResources => Some(&self.get_resources),
            Op::CreateResource => Some(&self.create_resource),
            Op::DeleteResource => Some(&self.delete_resource),
            Op::CreateDeployment => Some(&self.create_deployment),
            Op::ApiGateway => None,
            Op::Lambda => Some(&self.lambda),
            Op::GetFunction => Some(&self.get_function),
            Op::CloudWatch => Some(&self.cloudwatch),
        };
        if let Some(b) = specific {
            b.take().await;
        }
        if !matches!(op, Op::Lambda | Op::GetFunction | Op::CloudWatch) {
            self.apigw_total.take().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deployments_are_spaced_five_seconds_apart() {
        let p = Pacer::aws_quotas();
        let start = Instant::now();
        for _ in 0..3 {
            p.take(Op::CreateDeployment).await;
        }
        // The first is free (burst 1); the next two wait 5 s each.
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(10), "{took:?}");
        assert!(took < Duration::from_secs(11), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn total_rate_holds_after_the_burst() {
        let p = Pacer::aws_quotas();
        let start = Instant::now();
        for _ in 0..60 {
            p.take(Op::ApiGateway).await;
        }
        // 40 from the burst, then 20 at 10/s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1990), "{took:?}");
        assert!(took < Duration::from_millis(2100), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_never_waits() {
        let p = Pacer::disabled();
        let start = Instant::now();
        for _ in 0..100 {
            p.take(Op::CreateDeployment).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
