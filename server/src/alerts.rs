//! `/api/alerts`: the configured alert rules with their fleet-wide state,
//! and silences.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use sluice_engine::Client;
use sluice_engine::alerting::AlertRecord;

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};
use crate::integral;

/// An alert rule as the server shows it (the rules and their evaluation are
/// the binary's).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlertRuleInfo {
    /// The rule's name.
    pub name: String,
    /// Its kind.
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// Its queue.
    pub queue: Option<String>,
    /// Its threshold, in the kind's unit.
    pub threshold: Option<f64>,
    /// The unit.
    #[schema(value_type = String)]
    pub unit: &'static str,
    /// Its channels.
    pub channels: Vec<String>,
}

/// A rule as the API and the dashboard show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertView {
    /// The rule.
    #[serde(flatten)]
    pub rule: AlertRuleInfo,
    /// The fleet-wide state.
    #[serde(flatten)]
    pub record: AlertRecord,
}

/// Every rule in `rules` with its state.
pub async fn views(
    client: &Client,
    rules: &[AlertRuleInfo],
) -> sluice_engine::Result<Vec<AlertView>> {
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        out.push(AlertView {
            rule: rule.clone(),
            record: client.alerts().record_of(&rule.name).await?,
        });
    }
    Ok(out)
}

/// Longest silence: 30 days.
const MAX_SILENCE_SECS: u64 = 30 * 24 * 3600;

/// The configured alert rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// Every rule, in config order, with its fleet-wide state.
    pub alerts: Vec<AlertView>,
}

/// `GET /api/alerts`: every rule, in config order.
#[utoipa::path(get, path = "/api/alerts", tag = "alerts",
    responses((status = 200, description = "Every rule with its state", body = AlertList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<AlertList>> {
    Ok(Json(AlertList {
        alerts: views(&state.client, &state.alert_rules).await?,
    }))
}

/// `{name}` of an alert rule.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AlertPath {
    /// The rule's name, as configured.
    #[param(min_length = 1)]
    pub name: String,
}

/// What `POST /api/alerts/{name}/silence` asks for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// Silence for this many seconds (up to 30 days); 0 lifts the silence.
    #[serde(deserialize_with = "integral::u64")]
    #[schema(minimum = 0, maximum = 2_592_000)]
    pub for_secs: u64,
}

/// `POST /api/alerts/{name}/silence` (admin): the rule keeps its state but
/// sends nothing until the silence ends. Answers the rule after.
#[utoipa::path(post, path = "/api/alerts/{name}/silence", tag = "alerts", params(AlertPath),
    request_body = SilenceRequest,
    responses(
        (status = 200, description = "The rule, silenced or not", body = AlertView),
        (status = 404, description = "No such rule", body = ErrorBody),
    ))]
pub async fn silence(
    State(state): State<AppState>,
    ApiPath(AlertPath { name }): ApiPath<AlertPath>,
    ApiJson(body): ApiJson<SilenceRequest>,
) -> ApiResult<Json<AlertView>> {
    if !state.alert_rules.iter().any(|r| r.name == name) {
        return Err(ApiError::not_found(
            "alert_not_found",
            format!("no alert rule named {name:?}"),
        ));
    }
    if body.for_secs > MAX_SILENCE_SECS {
        return Err(ApiError::invalid(
            "invalid_silence",
            format!("for_secs must be 0 to {MAX_SILENCE_SECS}"),
        ));
    }
    let until = match body.for_secs {
        0 => None,
        secs => Some(state.client.alerts().server_time_ms().await? + secs * 1000),
    };
    state.client.alerts().silence(&name, until).await?;
    let view = views(&state.client, &state.alert_rules)
        .await?
        .into_iter()
        .find(|v| v.rule.name == name)
        .ok_or_else(|| ApiError::not_found("alert_not_found", "no such alert rule"))?;
    Ok(Json(view))
}
