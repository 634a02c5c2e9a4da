//! The shopping-protection API (admin or the `analyst` scope, as the issuer's app and its
//! analysts call it): filing a claim, attaching its documents, the decision, a claim with
//! what the annual cap has left.

use super::cases::posting;
use super::error::{ApiError, decode};
use super::{Answer, Ctx};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use cardguard_app::ClientId;
use cardguard_app::claims::{ClaimRequest, ClaimView};
use cardguard_core::{CardToken, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

fn at(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

fn money(m: &cardguard_core::Money) -> Value {
    json!({"value": m.value, "currency": m.currency.code()})
}

fn view(v: &ClaimView) -> Value {
    let c = &v.claim;
    json!({
        "id": c.id,
        "card_token": c.card_token,
        "authorization_id": c.authorization_id,
        "kind": c.kind,
        "amount": {"value": c.amount, "currency": c.currency},
        "occurred_at": at(c.occurred_ms),
        "purchased_at": at(c.purchased_ms),
        "filed_at": at(c.filed_ms),
        "policy_year": c.policy_year,
        "covered": {"value": c.covered, "currency": v.cap.currency.code()},
        "status": c.status,
        "payout": {"value": c.payout, "currency": v.cap.currency.code()},
        "description": c.description,
        "reasons": v.reasons,
        "decided_at": c.decided_ms.map(at),
        "decided_by": c.decided_by,
        "annual_cap": money(&v.cap),
        "cap_remaining": money(&v.remaining),
        "documents": v.documents.iter().map(|d| json!({
            "n": d.n, "content_type": d.content_type, "bytes": d.bytes, "sha256": d.sha256,
            "added_at": at(d.added_ms),
        })).collect::<Vec<_>>(),
        "postings": v.postings.iter().map(posting).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimReq {
    pub card_token: String,
    pub authorization_id: String,
    pub kind: String,
    pub amount: super::dto::AmountReq,
    pub occurred_at: String,
    #[serde(default)]
    pub description: String,
}

/// `POST /v1/claims`: a claim for a purchase damaged or stolen (201 with the claim,
/// awaiting its documents).
pub async fn file(State(ctx): State<Ctx>, raw: Bytes) -> Answer<Value> {
    let req: ClaimReq = decode(&raw)?;
    let card = CardToken::parse(&req.card_token)
        .map_err(|_| ApiError::field("card_token", "must be a card token (32 hex digits)"))?;
    let amount = req.amount.to_money("amount")?;
    let occurred_at = Timestamp::parse_rfc3339(&req.occurred_at)
        .map_err(|_| ApiError::field("occurred_at", "must be an RFC 3339 date-time"))?;
    let r = ClaimRequest {
        card,
        authorization_id: req.authorization_id,
        kind: req.kind,
        amount,
        occurred_at,
        description: req.description,
    };
    let app = std::sync::Arc::clone(&ctx.app);
    let v = tokio::task::spawn_blocking(move || app.file_claim(&r))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((StatusCode::CREATED, Json(view(&v))))
}

/// `GET /v1/claims/{id}`.
pub async fn get(State(ctx): State<Ctx>, Path(id): Path<i64>) -> Answer<Value> {
    let app = std::sync::Arc::clone(&ctx.app);
    let v = tokio::task::spawn_blocking(move || app.claim_view(id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((StatusCode::OK, Json(view(&v))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsQuery {
    #[serde(default)]
    card_token: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// `GET /v1/claims?card_token=…&status=…`: claims, newest first (at most 1,000).
pub async fn list(State(ctx): State<Ctx>, Query(q): Query<ClaimsQuery>) -> Answer<Vec<Value>> {
    let app = std::sync::Arc::clone(&ctx.app);
    let rows = tokio::task::spawn_blocking(move || {
        let rows = app
            .cases_store()
            .claims(q.card_token.as_deref(), q.status.as_deref(), 1000)
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        rows.into_iter()
            .map(|c| {
                app.view_of_claim(c)
                    .map(|v| view(&v))
                    .map_err(ApiError::from)
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((StatusCode::OK, Json(rows)))
}

/// `POST /v1/claims/{id}/documents`: the body is the document, its type in `Content-Type`
/// (application/pdf, image/jpeg, image/png).
pub async fn document(
    State(ctx): State<Ctx>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer<Value> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let app = std::sync::Arc::clone(&ctx.app);
    let d = tokio::task::spawn_blocking(move || app.add_claim_document(id, &ct, &raw))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"claim_id": d.claim_id, "n": d.n, "content_type": d.content_type,
                    "bytes": d.bytes, "sha256": d.sha256, "added_at": at(d.added_ms)}),
        ),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionReq {
    pub approve: bool,
    #[serde(default)]
    pub note: String,
}

/// `POST /v1/claims/{id}/decision`: `{"approve": true|false, "note"}`.
pub async fn decide(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(id): Path<i64>,
    raw: Bytes,
) -> Answer<Value> {
    let req: DecisionReq = decode(&raw)?;
    if req.note.chars().count() > 1000 {
        return Err(ApiError::field("note", "must be at most 1000 characters"));
    }
    let actor = format!("key:{}", client.as_str());
    let v = ctx
        .app
        .decide_claim(id, req.approve, &req.note, &actor)
        .await?;
    Ok((StatusCode::OK, Json(view(&v))))
}
