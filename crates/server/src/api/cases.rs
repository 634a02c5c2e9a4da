//! The cases API (admin or the `analyst` scope): the case queue, a case with its timeline,
//! opening a case by hand, actions on a case, and a card's transactions.

use super::error::{ApiError, decode};
use super::{Answer, Ctx};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use cardguard_app::ClientId;
use cardguard_app::cases::{CaseAction, CaseStatus, CaseView, tx_doc};
use cardguard_core::{CardToken, Timestamp};
use cardguard_store::{CaseRow, TxRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Serialize, Deserialize)]
pub struct CaseResp {
    pub id: i64,
    pub card_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_id: Option<String>,
    pub source: String,
    pub status: String,
    pub opened_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
}

fn at(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

impl From<&CaseRow> for CaseResp {
    fn from(c: &CaseRow) -> Self {
        CaseResp {
            id: c.id,
            card_token: c.card_token.clone(),
            authorization_id: c.authorization_id.clone(),
            source: c.source.clone(),
            status: c.status.clone(),
            opened_at: at(c.opened_ms),
            updated_at: at(c.updated_ms),
            due_at: c.due_ms.map(at),
        }
    }
}

/// A transaction as the API shows it.
fn transaction(t: &TxRow) -> Value {
    let mut v = json!({
        "authorization_id": t.authorization_id,
        "at": at(t.at_ms),
        "billing": t.billing,
    });
    if let Some(d) = tx_doc(t) {
        v["last4"] = json!(d.last4);
        v["amount"] = json!({"value": d.amount.value, "currency": d.amount.currency.code()});
        v["merchant"] = json!({"id": d.merchant_id, "name": d.merchant, "city": d.city, "country": d.country, "mcc": format!("{:04}", d.mcc)});
        v["channel"] = json!(d.channel);
        v["type"] = json!(d.tx_type);
        v["decision"] = json!(d.decision);
        v["response_code"] = json!(d.response_code);
        v["risk_score"] = json!(d.risk_score);
        v["reasons"] = d
            .reasons
            .iter()
            .map(|(code, detail)| json!({"code": code, "detail": detail}))
            .collect();
    }
    v
}

/// A case, its steps and the card's timeline (transactions, notifications and steps in
/// time order).
fn view(v: &CaseView) -> Value {
    let mut timeline: Vec<(i64, Value)> = Vec::new();
    for s in &v.steps {
        timeline.push((
            s.at_ms,
            json!({"kind": "step", "at": at(s.at_ms), "actor": s.actor, "action": s.action,
                   "from": s.from_status, "to": s.to_status, "note": s.note}),
        ));
    }
    for t in &v.transactions {
        let mut e = transaction(t);
        e["kind"] = json!("authorization");
        timeline.push((t.at_ms, e));
    }
    for n in &v.notifications {
        timeline.push((
            n.created_ms,
            json!({"kind": "notification", "at": at(n.created_ms), "notification": n.kind,
                   "channel": n.channel, "authorization_id": n.authorization_id,
                   "state": n.state.as_str()}),
        ));
    }
    timeline.sort_by_key(|(t, _)| *t);
    let mut out = serde_json::to_value(CaseResp::from(&v.case)).unwrap_or(Value::Null);
    out["steps"] = v
        .steps
        .iter()
        .map(|s| json!({"at": at(s.at_ms), "actor": s.actor, "action": s.action, "from": s.from_status, "to": s.to_status, "note": s.note}))
        .collect();
    out["timeline"] = timeline.into_iter().map(|(_, e)| e).collect();
    out["chargebacks"] = v.chargebacks.iter().map(chargeback).collect();
    out["postings"] = v.postings.iter().map(posting).collect();
    out
}

/// A ledger posting as the API shows it.
pub(crate) fn posting(p: &cardguard_store::Posting) -> Value {
    json!({"id": p.id, "kind": p.kind, "debit": p.debit, "credit": p.credit,
           "amount": {"value": p.amount, "currency": p.currency}, "at": at(p.at_ms),
           "authorization_id": p.authorization_id, "case_id": p.case_id, "claim_id": p.claim_id})
}

/// A decision's reasons as the API shows them.
pub(crate) fn reasons(r: &[cardguard_app::coverage::Reason]) -> Vec<Value> {
    r.iter()
        .map(|r| json!({"code": r.code, "detail": r.detail}))
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasesQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    card_token: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/cases?status=…&card_token=…&limit=N`: the queue, newest first.
pub async fn list(State(ctx): State<Ctx>, Query(q): Query<CasesQuery>) -> Answer<Vec<CaseResp>> {
    if let Some(s) = &q.status
        && CaseStatus::parse(s).is_none()
    {
        return Err(ApiError::field(
            "status",
            "must be open, awaiting_cardholder, investigating, resolved_fraud, resolved_genuine or closed",
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 1000"));
    }
    let app = std::sync::Arc::clone(&ctx.app);
    let rows = tokio::task::spawn_blocking(move || {
        app.cases_store()
            .list(q.status.as_deref(), q.card_token.as_deref(), limit)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok((
        StatusCode::OK,
        Json(rows.iter().map(CaseResp::from).collect()),
    ))
}

/// `GET /v1/cases/{id}`: the case with its steps and timeline.
pub async fn get(State(ctx): State<Ctx>, Path(id): Path<i64>) -> Answer<Value> {
    let app = std::sync::Arc::clone(&ctx.app);
    let v = tokio::task::spawn_blocking(move || app.case_view(id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((StatusCode::OK, Json(view(&v))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenReq {
    pub card_token: String,
    #[serde(default)]
    pub authorization_id: Option<String>,
    pub source: String,
    #[serde(default)]
    pub note: String,
}

fn card(token: &str, field: &str) -> Result<CardToken, ApiError> {
    CardToken::parse(token)
        .map_err(|_| ApiError::field(field, "must be a card token (32 hex digits)"))
}

/// `POST /v1/cases`: an analyst opens a case (`analyst`, `phishing_report`).
pub async fn open(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    raw: Bytes,
) -> Answer<CaseResp> {
    let req: OpenReq = decode(&raw)?;
    let token = card(&req.card_token, "card_token")?;
    let note = cardguard_app::validate::text("note", &req.note, 1000).or_else(|e| {
        if req.note.is_empty() {
            Ok(String::new())
        } else {
            Err(e)
        }
    })?;
    let actor = format!("key:{}", client.as_str());
    let (row, created) = ctx.app.open_case(
        &token,
        req.authorization_id.as_deref(),
        &req.source,
        &note,
        &actor,
    )?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(CaseResp::from(&row))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionReq {
    pub action: String,
    /// `label`: the label; `resolve`: the outcome (`fraud` or `genuine`).
    #[serde(default)]
    pub fraud: Option<bool>,
    #[serde(default)]
    pub outcome: Option<String>,
    /// `reissue`: `full` (default) or `card_not_present`.
    #[serde(default)]
    pub block: Option<String>,
    /// `resolve` as fraud: what the investigation found that a card product may count as
    /// gross negligence (`pin_written_on_card`, `pin_shared`, `card_lent`, …).
    #[serde(default)]
    pub findings: Vec<String>,
    #[serde(default)]
    pub note: String,
}

/// `POST /v1/cases/{id}/actions`: `release`, `block`, `label`, `resolve`, `close`.
pub async fn act(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(id): Path<i64>,
    raw: Bytes,
) -> Answer<Value> {
    let req: ActionReq = decode(&raw)?;
    let action = match req.action.as_str() {
        "release" => CaseAction::Release,
        "block" => CaseAction::Block,
        "label" => CaseAction::Label {
            fraud: req
                .fraud
                .ok_or_else(|| ApiError::field("fraud", "is required for label"))?,
        },
        "resolve" => CaseAction::Resolve {
            fraud: match req.outcome.as_deref() {
                Some("fraud") => true,
                Some("genuine") => false,
                _ => return Err(ApiError::field("outcome", "must be fraud or genuine")),
            },
            findings: req.findings.clone(),
        },
        "close" => CaseAction::Close,
        "reissue" => CaseAction::Reissue {
            block: req.block.clone().unwrap_or_else(|| "full".into()),
        },
        _ => {
            return Err(ApiError::field(
                "action",
                "must be one of release, block, label, resolve, close, reissue",
            ));
        }
    };
    if req.note.chars().count() > 1000 {
        return Err(ApiError::field("note", "must be at most 1000 characters"));
    }
    let actor = format!("key:{}", client.as_str());
    let done = ctx.app.case_action(id, action, &req.note, &actor).await?;
    let mut out = serde_json::to_value(CaseResp::from(&done.case)).unwrap_or(Value::Null);
    if let Some(c) = &done.compensation {
        out["compensation"] = json!({
            "covered": c.covered,
            "charges": c.charges.iter().map(|x| json!({
                "authorization_id": x.authorization_id,
                "amount": {"value": x.amount.value, "currency": x.amount.currency.code()},
                "outcome": x.outcome,
                "credited": {"value": x.credited.value, "currency": x.credited.currency.code()},
            })).collect::<Vec<_>>(),
            "reasons": reasons(&c.reasons),
            "postings": c.moves.iter().map(|m| posting(&m.posting)).collect::<Vec<_>>(),
        });
    }
    Ok((StatusCode::OK, Json(out)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaysQuery {
    #[serde(default)]
    days: Option<u32>,
}

/// `GET /v1/cards/{token}/transactions?days=60`: the card's transactions, newest first.
pub async fn transactions(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
    Query(q): Query<DaysQuery>,
) -> Answer<Vec<Value>> {
    let days = q.days.unwrap_or(60);
    if !(1..=400).contains(&days) {
        return Err(ApiError::field("days", "must be 1 to 400"));
    }
    let token =
        CardToken::parse(&token).map_err(|_| ApiError::not_found(format!("no card {token}")))?;
    let app = std::sync::Arc::clone(&ctx.app);
    let rows = tokio::task::spawn_blocking(move || app.card_transactions(&token, days))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((StatusCode::OK, Json(rows.iter().map(transaction).collect())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisputeReq {
    pub authorization_ids: Vec<String>,
    pub reason: String,
}

fn chargeback(c: &cardguard_store::ChargebackRow) -> Value {
    json!({"authorization_id": c.authorization_id, "reason": c.reason,
           "amount": {"value": c.amount, "currency": c.currency},
           "transaction_date": at(c.transaction_ms), "dispute_date": at(c.disputed_ms),
           "status": c.status})
}

/// `POST /v1/cards/{token}/disputes`: the cardholder's "not me" for charges of the last 60
/// days (through the issuer's app): withheld, labelled fraud, a case and chargebacks.
pub async fn dispute(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(token): Path<String>,
    raw: Bytes,
) -> Answer<Value> {
    let req: DisputeReq = decode(&raw)?;
    let token =
        CardToken::parse(&token).map_err(|_| ApiError::not_found(format!("no card {token}")))?;
    let actor = format!("key:{}", client.as_str());
    let d = ctx
        .app
        .dispute(&token, &req.authorization_ids, &req.reason, &actor)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "case": CaseResp::from(&d.case),
            "charges": d.chargebacks.iter().map(|c| json!({
                "authorization_id": c.authorization_id, "billing": "withheld", "chargeback": chargeback(c)
            })).collect::<Vec<_>>(),
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthQuery {
    month: String,
}

/// `GET /v1/cards/{token}/statement?month=YYYY-MM`: the month's charges in the
/// cardholder's time zone, their billing status, and the totals (what is due: billable).
pub async fn statement(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
    Query(q): Query<MonthQuery>,
) -> Answer<Value> {
    let token =
        CardToken::parse(&token).map_err(|_| ApiError::not_found(format!("no card {token}")))?;
    let app = std::sync::Arc::clone(&ctx.app);
    let st = tokio::task::spawn_blocking(move || app.statement(&token, &q.month))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let mut totals = serde_json::Map::new();
    for ((currency, billing), v) in &st.totals {
        let e = totals.entry(currency.clone()).or_insert_with(|| json!({}));
        e[billing] = json!(v);
    }
    Ok((
        StatusCode::OK,
        Json(json!({
            "month": st.month,
            "time_zone": st.time_zone,
            "lines": st.lines.iter().map(transaction).collect::<Vec<_>>(),
            "totals": totals,
            "postings": st.postings.iter().map(posting).collect::<Vec<_>>(),
            "due": st.due,
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReissueReq {
    pub block: String,
}

fn reissue_json(r: &cardguard_store::ReissueRow) -> Value {
    json!({
        "old_card_token": r.old_token,
        "card_token": r.new_token,
        "last4": r.new_last4,
        "expiry": r.new_expiry,
        "block": r.block,
        "expected_delivery": at(r.expected_ms),
        "activated_at": r.activated_ms.map(at),
    })
}

/// `POST /v1/cards/{token}/reissue` (admin): a new card for the old one, which is blocked
/// in full or for card-not-present use until the new card is activated.
pub async fn reissue(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(token): Path<String>,
    raw: Bytes,
) -> Answer<Value> {
    let req: ReissueReq = decode(&raw)?;
    let token =
        CardToken::parse(&token).map_err(|_| ApiError::not_found(format!("no card {token}")))?;
    let actor = format!("key:{}", client.as_str());
    let days = ctx.app.config.cases.reissue_delivery_days;
    let r = ctx.app.reissue(&token, &req.block, days, &actor).await?;
    Ok((StatusCode::CREATED, Json(reissue_json(&r.row))))
}

/// `POST /v1/cards/{token}/activate` (admin): the replacement card is active; the card it
/// replaces is closed.
pub async fn activate(State(ctx): State<Ctx>, Path(token): Path<String>) -> Answer<Value> {
    let token =
        CardToken::parse(&token).map_err(|_| ApiError::not_found(format!("no card {token}")))?;
    let app = std::sync::Arc::clone(&ctx.app);
    let r = tokio::task::spawn_blocking(move || app.activate(&token))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((StatusCode::OK, Json(reissue_json(&r))))
}

/// `GET /v1/cards/{token}/recurring-merchants`: the merchants that charged the card online
/// at least twice in 180 days, for the cardholder to tell of a new card.
pub async fn recurring(State(ctx): State<Ctx>, Path(token): Path<String>) -> Answer<Vec<Value>> {
    let token =
        CardToken::parse(&token).map_err(|_| ApiError::not_found(format!("no card {token}")))?;
    let app = std::sync::Arc::clone(&ctx.app);
    let rows = tokio::task::spawn_blocking(move || app.recurring_merchants(&token))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((
        StatusCode::OK,
        Json(
            rows.iter()
                .map(|r| json!({"merchant_id": r.merchant_id, "merchant": r.merchant, "charges": r.charges, "last_charge": at(r.last_ms)}))
                .collect(),
        ),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinceQuery {
    #[serde(default)]
    since: Option<String>,
}

/// `GET /v1/account-updater?since=RFC3339` (admin): replacement cards activated since then
/// (old card token → new token, last four, expiry), oldest first, for merchants that
/// subscribe.
pub async fn account_updater(
    State(ctx): State<Ctx>,
    Query(q): Query<SinceQuery>,
) -> Answer<Vec<Value>> {
    let since = match &q.since {
        Some(s) => {
            Timestamp::parse_rfc3339(s)
                .map_err(|_| ApiError::field("since", "must be an RFC 3339 time"))?
                .0
        }
        None => 0,
    };
    let app = std::sync::Arc::clone(&ctx.app);
    let rows =
        tokio::task::spawn_blocking(move || app.cases_store().activated_since(since, 10_000))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok((
        StatusCode::OK,
        Json(
            rows.iter()
                .map(|r| json!({"old_card_token": r.old_token, "card_token": r.new_token, "last4": r.new_last4, "expiry": r.new_expiry, "activated_at": r.activated_ms.map(at)}))
                .collect(),
        ),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargebackReq {
    pub outcome: String,
}

/// `POST /v1/chargebacks/{authorization_id}`: the acquirer's answer to a pending chargeback
/// (`accepted`: charged back; `rejected`).
pub async fn chargeback_outcome(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(authorization_id): Path<String>,
    raw: Bytes,
) -> Answer<Value> {
    let req: ChargebackReq = decode(&raw)?;
    let actor = format!("key:{}", client.as_str());
    let app = std::sync::Arc::clone(&ctx.app);
    let cb = tokio::task::spawn_blocking(move || {
        app.chargeback_outcome(&authorization_id, &req.outcome, &actor)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((StatusCode::OK, Json(chargeback(&cb))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    #[serde(default)]
    card_token: Option<String>,
}

/// `GET /v1/ledger?card_token=…`: every account's debits, credits and balance per currency,
/// of one card or of all.
pub async fn ledger(State(ctx): State<Ctx>, Query(q): Query<LedgerQuery>) -> Answer<Value> {
    if let Some(t) = &q.card_token {
        card(t, "card_token")?;
    }
    let app = std::sync::Arc::clone(&ctx.app);
    let rows =
        tokio::task::spawn_blocking(move || app.cases_store().balances(q.card_token.as_deref()))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "accounts": rows.iter().map(|b| json!({
                "account": b.account, "currency": b.currency, "debits": b.debits,
                "credits": b.credits, "balance": b.debits - b.credits,
            })).collect::<Vec<_>>(),
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    #[serde(default)]
    entered: Option<String>,
}

/// `POST /v1/cards/{token}/phishing-reports?entered=card_number,csc`: the mail a cardholder
/// reports (the body, RFC 5322) and what they typed into the page it led to: the analyzer's
/// report, the case opened when it flags the mail and card data was entered, and advice.
pub async fn phishing_report(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(token): Path<String>,
    Query(q): Query<ReportQuery>,
    raw: Bytes,
) -> Answer<Value> {
    let token =
        CardToken::parse(&token).map_err(|_| ApiError::not_found(format!("no card {token}")))?;
    let entered: Vec<String> = q
        .entered
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let actor = format!("key:{}", client.as_str());
    let r = ctx
        .app
        .phishing_report(&token, raw.to_vec(), &entered, &actor)
        .await?;
    let status = if r.case.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "report": r.report,
            "case": r.case.as_ref().map(CaseResp::from),
            "advice": r.advice,
        })),
    ))
}
