//! The analysts' routes (admin): the ruleset in force, its versions and rollback, the allow
//! and block lists, and one authorization's decision record. Thin: each decodes, calls
//! [`cardguard_app::App`] off the async workers where it touches SQLite, and maps the result.

use super::error::{ApiError, decode};
use super::{Answer, Ctx};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use cardguard_app::ClientId;
use cardguard_app::rules::RulesetVersion;
use cardguard_core::Timestamp;
use cardguard_store::{ListItemRow, RulesetRow};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The most a ruleset body may hold.
pub const MAX_RULES_BYTES: usize = 256 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct RuleResp {
    pub id: String,
    pub description: String,
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A version of the ruleset: who made it, when and how; with its rules when asked for one.
#[derive(Debug, Serialize, Deserialize)]
pub struct RulesetResp {
    pub version: u64,
    pub author: String,
    pub created_at: String,
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleResp>,
    /// The lists the rules name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<String>,
}

fn summary(row: &RulesetRow) -> RulesetResp {
    RulesetResp {
        version: row.version,
        author: row.author.clone(),
        created_at: Timestamp(row.created_ms).to_rfc3339(),
        note: row.note.clone(),
        text: None,
        rules: Vec::new(),
        lists: Vec::new(),
    }
}

fn whole(v: &RulesetVersion) -> RulesetResp {
    let rs = v.policy.ruleset();
    RulesetResp {
        text: Some(v.row.text.clone()),
        rules: rs
            .sources()
            .iter()
            .map(|s| RuleResp {
                id: s.id.clone(),
                description: s.description.clone(),
                rule: s.rule.clone(),
                reason: s.reason.clone(),
            })
            .collect(),
        lists: rs.lists().to_vec(),
        ..summary(&v.row)
    }
}

/// Runs a blocking call of the application (SQLite) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, cardguard_app::AppError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}

/// `GET /v1/rules`: the version in force, with its rules.
pub async fn active(State(ctx): State<Ctx>) -> Answer<RulesetResp> {
    Ok((StatusCode::OK, Json(whole(&ctx.app.rule_book().active()))))
}

/// `PUT /v1/rules`: a whole ruleset (TOML) in force as the next version, or 400 with every
/// error at its line and column.
pub async fn put(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    raw: Bytes,
) -> Answer<RulesetResp> {
    put_with(ctx, client, raw, cardguard_app::App::put_rules).await
}

/// A ruleset body (TOML in UTF-8, whatever the content type says) handed to `put` as the
/// request's client.
async fn put_with(
    ctx: Ctx,
    client: ClientId,
    raw: Bytes,
    put: fn(&cardguard_app::App, &str, &str) -> Result<RulesetVersion, cardguard_app::AppError>,
) -> Answer<RulesetResp> {
    let text = String::from_utf8(raw.to_vec())
        .map_err(|_| ApiError::field("body", "must be a ruleset in UTF-8 TOML"))?;
    let app = Arc::clone(&ctx.app);
    let v = blocking(move || put(&app, &text, client.as_str())).await?;
    Ok((StatusCode::OK, Json(whole(&v))))
}

/// `GET /v1/rules/versions`: every version, newest first.
pub async fn versions(State(ctx): State<Ctx>) -> Answer<Vec<RulesetResp>> {
    let app = Arc::clone(&ctx.app);
    let rows = blocking(move || app.rule_book().versions()).await?;
    Ok((StatusCode::OK, Json(rows.iter().map(summary).collect())))
}

fn version_number(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::field("version", "must be a version number (1, 2, ...)"))
}

/// `GET /v1/rules/versions/{version}`: one version with its rules.
pub async fn version(State(ctx): State<Ctx>, Path(version): Path<String>) -> Answer<RulesetResp> {
    let n = version_number(&version)?;
    let app = Arc::clone(&ctx.app);
    let v = blocking(move || app.rule_book().version(n)).await?;
    Ok((StatusCode::OK, Json(whole(&v))))
}

/// `POST /v1/rules/versions/{version}/rollback`: that version's rules in force again, as
/// the next version.
pub async fn rollback(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(version): Path<String>,
) -> Answer<RulesetResp> {
    let n = version_number(&version)?;
    let app = Arc::clone(&ctx.app);
    let v = blocking(move || app.rollback_rules(n, client.as_str())).await?;
    Ok((StatusCode::OK, Json(whole(&v))))
}

/// How the candidate in shadow mode compares with the rules in force.
#[derive(Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// Since the candidate was set (or the server started).
    pub since: String,
    pub decisions: u64,
    pub agree: u64,
    /// The candidate would have declined, held, challenged or approved where the rules in
    /// force did otherwise.
    pub would_decline: u64,
    pub would_hold: u64,
    pub would_challenge: u64,
    pub would_approve: u64,
    /// Every pair of decisions with its count.
    pub by_decision: Vec<PairCount>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PairCount {
    pub active: String,
    pub shadow: String,
    pub count: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ShadowResp {
    pub ruleset: RulesetResp,
    /// The model it scores with: its own (`engine.shadow_model_file`) or the one in force.
    pub model: String,
    pub comparison: Comparison,
}

fn comparison(t: &cardguard_app::ShadowTally) -> Comparison {
    use cardguard_app::metrics::DECISION_ORDER as D;
    let mut c = Comparison {
        since: Timestamp(t.since_ms).to_rfc3339(),
        decisions: 0,
        agree: 0,
        would_decline: 0,
        would_hold: 0,
        would_challenge: 0,
        would_approve: 0,
        by_decision: Vec::new(),
    };
    for (a, row) in D.iter().zip(&t.counts) {
        for (b, &n) in D.iter().zip(row) {
            c.decisions += n;
            if a == b {
                c.agree += n;
            } else {
                match b {
                    cardguard_core::Decision::Decline => c.would_decline += n,
                    cardguard_core::Decision::Hold => c.would_hold += n,
                    cardguard_core::Decision::Challenge => c.would_challenge += n,
                    cardguard_core::Decision::Approve => c.would_approve += n,
                }
            }
            if n > 0 {
                c.by_decision.push(PairCount {
                    active: a.as_str().to_owned(),
                    shadow: b.as_str().to_owned(),
                    count: n,
                });
            }
        }
    }
    c
}

/// `GET /v1/rules/shadow`: the candidate in shadow mode and how it compares.
pub async fn shadow(State(ctx): State<Ctx>) -> Answer<ShadowResp> {
    let v = ctx
        .app
        .rule_book()
        .shadow()
        .ok_or_else(|| ApiError::not_found("no ruleset runs in shadow mode"))?;
    let model = ctx.app.shadow_model_version();
    Ok((
        StatusCode::OK,
        Json(ShadowResp {
            ruleset: whole(&v),
            model,
            comparison: comparison(&ctx.app.shadow_tally()),
        }),
    ))
}

/// `PUT /v1/rules/shadow`: a candidate ruleset (TOML) decided beside the one in force on
/// every authorization, recorded and compared, never acting.
pub async fn put_shadow(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    raw: Bytes,
) -> Answer<RulesetResp> {
    put_with(ctx, client, raw, cardguard_app::App::put_shadow_rules).await
}

/// `DELETE /v1/rules/shadow`: ends shadow mode.
pub async fn delete_shadow(State(ctx): State<Ctx>) -> Result<StatusCode, ApiError> {
    let app = Arc::clone(&ctx.app);
    blocking(move || app.clear_shadow_rules()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/rules/shadow/promote`: the candidate's rules in force, as the next version.
pub async fn promote_shadow(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
) -> Answer<RulesetResp> {
    let app = Arc::clone(&ctx.app);
    let v = blocking(move || app.promote_shadow_rules(client.as_str())).await?;
    Ok((StatusCode::OK, Json(whole(&v))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemReq {
    pub value: String,
    /// RFC 3339; absent: the item never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ItemResp {
    pub list: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub expired: bool,
    pub added_at: String,
    pub added_by: String,
}

fn item(i: &ListItemRow, now_ms: i64) -> ItemResp {
    ItemResp {
        list: i.list.clone(),
        value: i.value.clone(),
        expires_at: i.expires_ms.map(|t| Timestamp(t).to_rfc3339()),
        expired: i.expires_ms.is_some_and(|t| t <= now_ms),
        added_at: Timestamp(i.added_ms).to_rfc3339(),
        added_by: i.added_by.clone(),
    }
}

fn now_ms() -> i64 {
    cardguard_core::Clock::now(&cardguard_core::SystemClock).0
}

/// `POST /v1/lists/{name}/items`: adds (or renews) an item; the next authorization sees it.
pub async fn add_item(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(list): Path<String>,
    raw: Bytes,
) -> Answer<ItemResp> {
    let req: ItemReq = decode(&raw)?;
    let expires_ms = match &req.expires_at {
        Some(t) => Some(
            Timestamp::parse_rfc3339(t)
                .map_err(|_| ApiError::field("expires_at", "must be an RFC 3339 time"))?
                .0,
        ),
        None => None,
    };
    let app = Arc::clone(&ctx.app);
    let row =
        blocking(move || app.add_list_item(&list, &req.value, expires_ms, client.as_str())).await?;
    Ok((StatusCode::CREATED, Json(item(&row, now_ms()))))
}

/// `DELETE /v1/lists/{name}/items/{value}` (an IP range's `/` written `%2F`).
pub async fn remove_item(
    State(ctx): State<Ctx>,
    Path((list, value)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = Arc::clone(&ctx.app);
    blocking(move || app.remove_list_item(&list, &value)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/lists/{name}`: the list's items.
pub async fn items(State(ctx): State<Ctx>, Path(list): Path<String>) -> Answer<Vec<ItemResp>> {
    let app = Arc::clone(&ctx.app);
    let rows = blocking(move || app.rule_book().items(&list)).await?;
    let now = now_ms();
    Ok((
        StatusCode::OK,
        Json(rows.iter().map(|i| item(i, now)).collect()),
    ))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ListResp {
    pub name: String,
    pub kind: String,
    pub items: usize,
}

/// `GET /v1/lists`: every list that has items.
pub async fn lists(State(ctx): State<Ctx>) -> Answer<Vec<ListResp>> {
    let app = Arc::clone(&ctx.app);
    let names = blocking(move || app.rule_book().list_names()).await?;
    Ok((
        StatusCode::OK,
        Json(
            names
                .into_iter()
                .map(|(name, items)| ListResp {
                    kind: cardguard_engine::ListKind::of_name(&name)
                        .map(|k| k.as_str())
                        .unwrap_or("")
                        .to_owned(),
                    name,
                    items,
                })
                .collect(),
        ),
    ))
}

/// A decision's rules evaluated again.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplayResp {
    pub matched_rules: Vec<String>,
    /// The same rules matched as when it was decided.
    pub agrees: bool,
}

/// One authorization's decision record.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuthorizationDetail {
    #[serde(flatten)]
    pub decision: super::dto::AuthorizationResp,
    pub timestamp: String,
    pub amount: super::dto::AmountReq,
    pub merchant_id: String,
    pub terminal_id: String,
    pub merchant_name: String,
    pub merchant_country: String,
    pub mcc: String,
    pub channel: String,
    #[serde(rename = "type")]
    pub tx_type: String,
    /// `fraud`, `genuine` or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub reversed: bool,
    /// The cardholder's answer to an alert: `yes`, `no` or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The lists that held a value the rules looked up.
    pub list_hits: Vec<cardguard_engine::ListHit>,
    /// The feature values the decision saw, by name.
    pub features: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayResp>,
    /// What the candidate in shadow mode would have decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<cardguard_engine::ShadowOutcome>,
}

/// `GET /v1/authorizations/{id}`: the decision record (ruleset version, model, matched
/// rules, features, list hits), what became of it, and its rules replayed.
pub async fn authorization(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
) -> Answer<AuthorizationDetail> {
    use cardguard_engine::{Answer as A, Label as L};
    let v = ctx.app.authorization(&id).await?;
    let r = &v.record;
    let features = cardguard_engine::FEATURE_NAMES
        .iter()
        .zip(&r.outcome.features)
        .map(|(n, x)| ((*n).to_owned(), serde_json::json!(x)))
        .collect();
    Ok((
        StatusCode::OK,
        Json(AuthorizationDetail {
            decision: super::dto::AuthorizationResp::from_record(r),
            timestamp: r.tx.ts.to_rfc3339_at_offset(r.tx.utc_offset_min),
            amount: super::dto::AmountReq {
                value: r.tx.amount.value,
                currency: r.tx.amount.currency.code().to_owned(),
            },
            merchant_id: r.tx.merchant.id.clone(),
            terminal_id: r.tx.merchant.terminal_id.clone(),
            merchant_name: r.tx.merchant.name.clone(),
            merchant_country: r.tx.merchant.country.as_str().to_owned(),
            mcc: r.tx.merchant.mcc.to_string(),
            channel: r.tx.channel.as_str().to_owned(),
            tx_type: r.tx.tx_type.as_str().to_owned(),
            label: match v.entry.label {
                L::None => None,
                L::Fraud => Some("fraud".into()),
                L::Genuine => Some("genuine".into()),
            },
            reversed: v.entry.reversed,
            answer: match v.entry.answer {
                A::None => None,
                A::Yes => Some("yes".into()),
                A::No => Some("no".into()),
            },
            list_hits: r.outcome.list_hits.clone(),
            features,
            replay: v.replay.map(|p| ReplayResp {
                matched_rules: p.matched_rules,
                agrees: p.agrees,
            }),
            shadow: r.outcome.shadow.as_deref().cloned(),
        }),
    ))
}
