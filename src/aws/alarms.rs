//! CloudWatch alarms of releases: their states, read for many releases at
//! once (100 names a call), and the guard alarm apimount creates on a new
//! version's error rate while it is released. The CloudWatch clients are
//! made when a release first needs one, so a daemon without releases
//! carries none.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricStat,
};

use super::accounts::through_role;
use super::error::map_err;
use super::pacing::Op as Paced;
use super::{Aws, AwsError};
use crate::plan::release::AlarmState;

/// Most alarm names one DescribeAlarms call takes.
pub const NAMES_PER_CALL: usize = 100;

/// The guard alarm to create: on the error rate of `version` of `function`
/// served through `alias`.
#[derive(Debug, Clone)]
pub struct GuardSpec<'a> {
    pub name: &'a str,
    pub function_name: &'a str,
    pub alias: &'a str,
    pub version: &'a str,
    /// Percent of invocations.
    pub max_error_rate: f64,
    pub description: &'a str,
}

impl Aws {
    /// The states of `names` in `account` (the API's when `None`); a name
    /// missing from the answer does not exist. One call per 100 names (and
    /// per page).
    pub async fn alarm_states(
        &self,
        account: Option<&str>,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError> {
        let (cw, pacer, role) = self.cloudwatch_in(account);
        let mut out = BTreeMap::new();
        for chunk in names.chunks(NAMES_PER_CALL) {
            let mut token = None;
            loop {
                pacer.take(Paced::CloudWatch).await;
                let page = cw
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| {
                        through_role(map_err("cloudwatch:DescribeAlarms", e), role.as_ref())
                    })?;
                let metric = page
                    .metric_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value().map(|s| s.as_str())));
                let composite = page
                    .composite_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value().map(|s| s.as_str())));
                for (name, state) in metric.chain(composite) {
                    if let (Some(n), Some(s)) = (name, state.and_then(AlarmState::parse)) {
                        out.insert(n.to_string(), s);
                    }
                }
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Creates (or replaces) a guard alarm: the version's errors over its
    /// invocations through the alias, per minute, above the rate.
    pub async fn put_guard_alarm(
        &self,
        account: Option<&str>,
        g: &GuardSpec<'_>,
    ) -> Result<(), AwsError> {
        let (cw, pacer, role) = self.cloudwatch_in(account);
        pacer.take(Paced::CloudWatch).await;
        let dimensions = [
            ("FunctionName", g.function_name.to_string()),
            ("Resource", format!("{}:{}", g.function_name, g.alias)),
            ("ExecutedVersion", g.version.to_string()),
        ];
        let metric = |id: &str, name: &str| {
            MetricDataQuery::builder()
                .id(id)
                .return_data(false)
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace("AWS/Lambda")
                                .metric_name(name)
                                .set_dimensions(Some(
                                    dimensions
                                        .iter()
                                        .map(|(n, v)| {
                                            Dimension::builder().name(*n).value(v).build()
                                        })
                                        .collect(),
                                ))
                                .build(),
                        )
                        .period(60)
                        .stat("Sum")
                        .build(),
                )
                .build()
        };
        let rate = MetricDataQuery::builder()
            .id("rate")
            .expression("IF(invocations > 0, 100 * errors / invocations, 0)")
            .label("error rate, percent")
            .return_data(true)
            .build();
        cw.put_metric_alarm()
            .alarm_name(g.name)
            .alarm_description(g.description)
            .metrics(metric("errors", "Errors"))
            .metrics(metric("invocations", "Invocations"))
            .metrics(rate)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .threshold(g.max_error_rate)
            .evaluation_periods(1)
            .datapoints_to_alarm(1)
            .treat_missing_data("notBreaching")
            .send()
            .await
            .map_err(|e| through_role(map_err("cloudwatch:PutMetricAlarm", e), role.as_ref()))?;
        Ok(())
    }

    /// Deletes a guard alarm (a missing one is not an error: DeleteAlarms
    /// ignores names it does not know).
    pub async fn delete_alarm(&self, account: Option<&str>, name: &str) -> Result<(), AwsError> {
        let (cw, pacer, role) = self.cloudwatch_in(account);
        pacer.take(Paced::CloudWatch).await;
        cw.delete_alarms()
            .alarm_names(name)
            .send()
            .await
            .map_err(|e| through_role(map_err("cloudwatch:DeleteAlarms", e), role.as_ref()))?;
        Ok(())
    }
}
