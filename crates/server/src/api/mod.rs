//! The HTTP/JSON API (axum): routes, credentials, body limits and the handlers.

pub mod auth;
pub mod cases;
pub mod claims;
pub mod dto;
pub mod error;
pub mod rules;
pub mod stepup;

use auth::require;
use axum::Extension;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use cardguard_app::{ApiKeys, App, ClientId, Scope};
use error::{ApiError, decode};
use std::sync::Arc;

#[derive(Clone)]
pub struct Ctx {
    pub app: Arc<App>,
    pub keys: Arc<ApiKeys>,
    pub max_body: usize,
    /// The largest claim document (`cases.claim_document_max_bytes`).
    pub max_document: usize,
    /// A body must arrive within this once its headers have (zero: no limit).
    pub body_timeout: std::time::Duration,
}

/// The most an authorization body may hold: its fields are short.
pub const MAX_AUTHORIZATION_BYTES: usize = 16 * 1024;
/// The most a label body may hold.
pub const MAX_LABEL_BYTES: usize = 4 * 1024;
/// The most a body may hold on a route that takes none (reloads).
pub const MAX_EMPTY_BYTES: usize = 1024;

/// What a route needs before its body is read: the scopes of the key it takes (none for a
/// public route), and the most body it reads (none: it reads no body).
struct Policy {
    scopes: Option<&'static [Scope]>,
    body: Option<usize>,
}

fn policy(method: &axum::http::Method, path: &str, max_body: usize, document: usize) -> Policy {
    use axum::http::Method;
    let p = |scopes: Option<&'static [Scope]>, body: Option<usize>| Policy { scopes, body };
    const ADMIN: &[Scope] = &[Scope::Admin];
    const CASEWORK: &[Scope] = &[Scope::Admin, Scope::Analyst];
    match (method, path) {
        (&Method::POST, "/v1/cards") => p(Some(ADMIN), Some(max_body)),
        (&Method::POST, "/v1/cards:batch") => p(Some(ADMIN), Some(dto::MAX_BATCH_BYTES)),
        (&Method::POST, "/v1/authorizations") => p(
            Some(&[Scope::Authorize]),
            Some(max_body.min(MAX_AUTHORIZATION_BYTES)),
        ),
        (&Method::POST, "/v1/reversals") => p(
            Some(&[Scope::Authorize]),
            Some(max_body.min(MAX_LABEL_BYTES)),
        ),
        (&Method::POST, "/v1/labels") => p(
            Some(&[Scope::Label, Scope::Admin]),
            Some(max_body.min(MAX_LABEL_BYTES)),
        ),
        (&Method::POST, "/v1/mail/scan") => p(
            Some(&[Scope::Mail, Scope::Admin]),
            Some(cardguard_phish::analyze::MAX_MESSAGE_BYTES),
        ),
        (&Method::POST, "/v1/mail/brands/reload" | "/v1/model/reload") => {
            p(Some(ADMIN), Some(MAX_EMPTY_BYTES))
        }
        (&Method::GET, "/v1/stats" | "/v1/model") => p(Some(ADMIN), None),
        // The analysts' routes: the ruleset, its versions, the lists, decision records.
        (&Method::PUT, "/v1/rules" | "/v1/rules/shadow") => {
            p(Some(ADMIN), Some(rules::MAX_RULES_BYTES))
        }
        (&Method::DELETE, "/v1/rules/shadow") => p(Some(ADMIN), None),
        (&Method::GET, path)
            if path == "/v1/rules"
                || path.starts_with("/v1/rules/")
                || path == "/v1/lists"
                || path.starts_with("/v1/lists/")
                || path.starts_with("/v1/authorizations/") =>
        {
            p(Some(ADMIN), None)
        }
        (&Method::POST, path) if path.starts_with("/v1/rules/") => {
            p(Some(ADMIN), Some(MAX_EMPTY_BYTES))
        }
        (&Method::POST, path) if path.starts_with("/v1/lists/") => {
            p(Some(ADMIN), Some(max_body.min(MAX_LABEL_BYTES)))
        }
        (&Method::DELETE, path) if path.starts_with("/v1/lists/") => p(Some(ADMIN), None),
        (&Method::GET, "/v1/holds" | "/v1/notifications" | "/v1/account-updater") => {
            p(Some(ADMIN), None)
        }
        (&Method::POST, path)
            if (path.starts_with("/v1/holds/") && path.ends_with("/answer"))
                || (path.starts_with("/v1/notifications/") && path.ends_with("/retry")) =>
        {
            p(Some(ADMIN), Some(MAX_EMPTY_BYTES))
        }
        // Step-up authentication: a 3-D Secure server (or an acquirer that authorizes too).
        (&Method::POST, "/v1/authentications") => p(
            Some(&[Scope::Authenticate, Scope::Authorize]),
            Some(max_body.min(stepup::MAX_AUTHENTICATION_BYTES)),
        ),
        (&Method::GET, path) if path.starts_with("/v1/authentications/") => {
            p(Some(&[Scope::Authenticate, Scope::Authorize]), None)
        }
        (&Method::POST, path) if path.starts_with("/v1/authentications/") => p(
            Some(&[Scope::Authenticate, Scope::Authorize]),
            Some(max_body.min(MAX_LABEL_BYTES)),
        ),
        // Casework: the issuer's, or an analyst's.
        (&Method::POST, path)
            if path.starts_with("/v1/cards/") && path.ends_with("/phishing-reports") =>
        {
            p(
                Some(CASEWORK),
                Some(cardguard_phish::analyze::MAX_MESSAGE_BYTES),
            )
        }
        (&Method::POST, path)
            if path.starts_with("/v1/claims/") && path.ends_with("/documents") =>
        {
            p(Some(CASEWORK), Some(document))
        }
        (&Method::GET, path)
            if path == "/v1/cases"
                || path.starts_with("/v1/cases/")
                || path == "/v1/claims"
                || path.starts_with("/v1/claims/")
                || path == "/v1/ledger"
                || (path.starts_with("/v1/cards/")
                    && (path.ends_with("/transactions")
                        || path.ends_with("/statement")
                        || path.ends_with("/recurring-merchants"))) =>
        {
            p(Some(CASEWORK), None)
        }
        (&Method::POST, path)
            if path == "/v1/cases"
                || path.starts_with("/v1/cases/")
                || path == "/v1/claims"
                || path.starts_with("/v1/claims/")
                || path.starts_with("/v1/chargebacks/")
                || (path.starts_with("/v1/cards/") && path.ends_with("/disputes")) =>
        {
            p(Some(CASEWORK), Some(max_body.min(MAX_LABEL_BYTES)))
        }
        // A card's devices, authenticator app and lockout: the issuer's.
        (&Method::GET | &Method::DELETE, path) if path.starts_with("/v1/cards/") => {
            p(Some(ADMIN), None)
        }
        (&Method::POST, path) if path.starts_with("/v1/cards/") => {
            p(Some(ADMIN), Some(max_body.min(MAX_LABEL_BYTES)))
        }
        (&Method::POST, "/v1/passwords/check") => p(Some(ADMIN), Some(MAX_LABEL_BYTES)),
        // The challenge page: its signed link is its credential.
        (&Method::POST, crate::challenge::CHALLENGE_PATH) => p(None, Some(MAX_LABEL_BYTES)),
        (&Method::POST, path) if path.starts_with(crate::challenge::PASSKEY_PATH) => {
            p(None, Some(MAX_AUTHORIZATION_BYTES))
        }
        // The SMS provider's webhook: its shared secret is its credential.
        (&Method::POST, crate::pages::SMS_INBOUND_PATH) => p(None, Some(MAX_LABEL_BYTES)),
        // The cardholder's answer page: its signed link is its credential.
        (&Method::POST, crate::pages::ANSWER_PATH) => p(None, Some(MAX_EMPTY_BYTES)),
        (&Method::GET, "/metrics") => p(Some(&[Scope::Metrics, Scope::Admin]), None),
        // Public (health, the OpenAPI document) or no such route (the router answers 404
        // or 405 without reading a body).
        _ => p(None, None),
    }
}

/// Before any handler, and the one place credentials and body limits are checked: the
/// route's key and scopes from the headers, before a byte of the body is read (the client
/// it names goes to the handler as an extension); a declared length over the route's limit
/// is refused at once; the body must arrive within `server.body_timeout_ms` (408). The
/// handler gets the body buffered.
async fn gate(
    State(ctx): State<Ctx>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let rule = policy(
        req.method(),
        req.uri().path(),
        ctx.max_body,
        ctx.max_document,
    );
    if let Some(scopes) = rule.scopes {
        match require(&ctx.keys, req.headers(), scopes) {
            Ok(client) => {
                req.extensions_mut().insert(client);
            }
            Err(e) => {
                let h = req.headers();
                let has_body = h.contains_key(axum::http::header::TRANSFER_ENCODING)
                    || h.get(axum::http::header::CONTENT_LENGTH)
                        .is_some_and(|v| v.as_bytes() != b"0");
                let r = e.into_response();
                return if has_body { close(r) } else { r };
            }
        }
    }
    let Some(limit) = rule.body else {
        return next.run(req).await;
    };
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return close(ApiError::too_large(limit).into_response());
    }
    let (parts, body) = req.into_parts();
    let read = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit));
    let read = if ctx.body_timeout.is_zero() {
        Ok(read.await)
    } else {
        tokio::time::timeout(ctx.body_timeout, read).await
    };
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return close(ApiError::too_large(limit).into_response());
        }
        Ok(Err(e)) => {
            return close(
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string())
                    .into_response(),
            );
        }
        Err(_) => {
            return close(
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {} ms",
                        ctx.body_timeout.as_millis()
                    ),
                )
                .into_response(),
            );
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// A refusal before the body was read: the connection is closed after it, so that the
/// unread body is not read as the next request.
fn close(mut r: Response) -> Response {
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}

/// Every route, as the OpenAPI document must list it.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/cards"),
    ("post", "/v1/cards:batch"),
    ("post", "/v1/authorizations"),
    ("post", "/v1/reversals"),
    ("post", "/v1/labels"),
    ("get", "/v1/stats"),
    ("get", "/v1/health"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/mail/scan"),
    ("post", "/v1/mail/brands/reload"),
    ("post", "/v1/model/reload"),
    ("get", "/v1/model"),
    ("get", "/answer"),
    ("post", "/answer"),
    ("get", "/v1/holds"),
    ("post", "/v1/holds/{authorization_id}/answer"),
    ("get", "/v1/notifications"),
    ("post", "/v1/notifications/{key}/retry"),
    ("post", "/v1/sms/inbound"),
    ("get", "/v1/authorizations/{authorization_id}"),
    ("get", "/v1/rules"),
    ("put", "/v1/rules"),
    ("get", "/v1/rules/shadow"),
    ("put", "/v1/rules/shadow"),
    ("delete", "/v1/rules/shadow"),
    ("post", "/v1/rules/shadow/promote"),
    ("get", "/v1/rules/versions"),
    ("get", "/v1/rules/versions/{version}"),
    ("post", "/v1/rules/versions/{version}/rollback"),
    ("get", "/v1/lists"),
    ("get", "/v1/lists/{name}"),
    ("post", "/v1/lists/{name}/items"),
    ("delete", "/v1/lists/{name}/items/{value}"),
    ("post", "/v1/authentications"),
    ("get", "/v1/authentications/{id}"),
    ("post", "/v1/authentications/{id}/challenge"),
    ("post", "/v1/authentications/{id}/resend"),
    ("get", "/v1/cards/{token}/devices"),
    ("delete", "/v1/cards/{token}/devices/{device_id}"),
    ("post", "/v1/cards/{token}/totp"),
    ("delete", "/v1/cards/{token}/totp"),
    ("post", "/v1/cards/{token}/totp/confirm"),
    ("post", "/v1/cards/{token}/stepup/unlock"),
    ("post", "/v1/cards/{token}/pin"),
    ("post", "/v1/passwords/check"),
    ("get", "/v1/cases"),
    ("post", "/v1/cases"),
    ("get", "/v1/cases/{id}"),
    ("post", "/v1/cases/{id}/actions"),
    ("get", "/v1/cards/{token}/transactions"),
    ("post", "/v1/cards/{token}/disputes"),
    ("post", "/v1/cards/{token}/phishing-reports"),
    ("post", "/v1/chargebacks/{authorization_id}"),
    ("get", "/v1/ledger"),
    ("get", "/v1/claims"),
    ("post", "/v1/claims"),
    ("get", "/v1/claims/{id}"),
    ("post", "/v1/claims/{id}/documents"),
    ("post", "/v1/claims/{id}/decision"),
    ("get", "/v1/cards/{token}/statement"),
    ("post", "/v1/cards/{token}/reissue"),
    ("post", "/v1/cards/{token}/activate"),
    ("get", "/v1/cards/{token}/recurring-merchants"),
    ("get", "/v1/account-updater"),
    ("get", "/challenge"),
    ("post", "/challenge"),
    ("get", "/challenge/passkey.js"),
    ("post", "/challenge/passkey/{what}/{stage}"),
];

pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/v1/cards", post(enroll))
        .route("/v1/cards:batch", post(enroll_batch))
        .route("/v1/authorizations", post(authorize))
        .route(
            "/v1/authorizations/{authorization_id}",
            get(rules::authorization),
        )
        .route("/v1/rules", get(rules::active).put(rules::put))
        .route(
            "/v1/rules/shadow",
            get(rules::shadow)
                .put(rules::put_shadow)
                .delete(rules::delete_shadow),
        )
        .route("/v1/rules/shadow/promote", post(rules::promote_shadow))
        .route("/v1/rules/versions", get(rules::versions))
        .route("/v1/rules/versions/{version}", get(rules::version))
        .route(
            "/v1/rules/versions/{version}/rollback",
            post(rules::rollback),
        )
        .route("/v1/lists", get(rules::lists))
        .route("/v1/lists/{name}", get(rules::items))
        .route("/v1/lists/{name}/items", post(rules::add_item))
        .route(
            "/v1/lists/{name}/items/{value}",
            axum::routing::delete(rules::remove_item),
        )
        .route(
            crate::pages::ANSWER_PATH,
            get(crate::pages::show).post(crate::pages::answer),
        )
        .route("/v1/authentications", post(stepup::create))
        .route("/v1/authentications/{id}", get(stepup::get))
        .route(
            "/v1/authentications/{id}/challenge",
            post(stepup::challenge),
        )
        .route("/v1/authentications/{id}/resend", post(stepup::resend))
        .route("/v1/cards/{token}/devices", get(stepup::devices))
        .route(
            "/v1/cards/{token}/devices/{device_id}",
            axum::routing::delete(stepup::revoke_device),
        )
        .route(
            "/v1/cards/{token}/totp",
            post(stepup::enroll_totp).delete(stepup::remove_totp),
        )
        .route("/v1/cards/{token}/totp/confirm", post(stepup::confirm_totp))
        .route("/v1/cards/{token}/stepup/unlock", post(stepup::unlock))
        .route("/v1/cards/{token}/pin", post(stepup::set_pin))
        .route("/v1/passwords/check", post(stepup::check_password))
        .route("/v1/cases", get(cases::list).post(cases::open))
        .route("/v1/cases/{id}", get(cases::get))
        .route("/v1/cases/{id}/actions", post(cases::act))
        .route("/v1/cards/{token}/transactions", get(cases::transactions))
        .route("/v1/cards/{token}/disputes", post(cases::dispute))
        .route(
            "/v1/cards/{token}/phishing-reports",
            post(cases::phishing_report),
        )
        .route(
            "/v1/chargebacks/{authorization_id}",
            post(cases::chargeback_outcome),
        )
        .route("/v1/ledger", get(cases::ledger))
        .route("/v1/claims", get(claims::list).post(claims::file))
        .route("/v1/claims/{id}", get(claims::get))
        .route("/v1/claims/{id}/documents", post(claims::document))
        .route("/v1/claims/{id}/decision", post(claims::decide))
        .route("/v1/cards/{token}/statement", get(cases::statement))
        .route("/v1/cards/{token}/reissue", post(cases::reissue))
        .route("/v1/cards/{token}/activate", post(cases::activate))
        .route(
            "/v1/cards/{token}/recurring-merchants",
            get(cases::recurring),
        )
        .route("/v1/account-updater", get(cases::account_updater))
        .route(
            crate::challenge::CHALLENGE_PATH,
            get(crate::challenge::show).post(crate::challenge::submit),
        )
        .route(
            crate::challenge::PASSKEY_JS_PATH,
            get(crate::challenge::passkey_js),
        )
        .route(
            "/challenge/passkey/{what}/{stage}",
            post(crate::challenge::passkey),
        )
        .route("/v1/reversals", post(reverse))
        .route(
            crate::pages::SMS_INBOUND_PATH,
            post(crate::pages::sms_inbound),
        )
        .route("/v1/holds", get(holds))
        .route("/v1/holds/{authorization_id}/answer", post(answer_hold))
        .route("/v1/notifications", get(notifications))
        .route("/v1/notifications/{key}/retry", post(retry_notification))
        .route("/v1/labels", post(label))
        .route("/v1/stats", get(stats))
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/mail/scan", post(mail_scan))
        .route("/v1/mail/brands/reload", post(reload_brands))
        .route("/v1/model/reload", post(reload_model))
        .route("/v1/model", get(model_status))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The gate reads and limits every body, per route.
        .layer(DefaultBodyLimit::disable())
        // Inside the gate: it sees the key the gate found.
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            audit_actions,
        ))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), gate))
        .layer(axum::middleware::map_response_with_state(
            ctx.clone(),
            count_refusals,
        ))
        .with_state(ctx)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

pub(crate) type Answer<T> = Result<(StatusCode, Json<T>), ApiError>;

async fn authorize(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    raw: Bytes,
) -> Answer<dto::AuthorizationResp> {
    let started = std::time::Instant::now();
    let req: dto::AuthorizationReq = decode(&raw)?;
    let (auth, offset) = req.validate()?;
    let record = ctx.app.authorize(auth, offset, &client, started).await?;
    Ok((
        StatusCode::OK,
        Json(dto::AuthorizationResp::from_record(&record)),
    ))
}

async fn enroll(State(ctx): State<Ctx>, raw: Bytes) -> Answer<dto::EnrollResp> {
    let req: dto::EnrollReq = decode(&raw)?;
    let app = Arc::clone(&ctx.app);
    let resp: dto::EnrollResp = tokio::task::spawn_blocking(move || app.enroll(&req))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??
        .into();
    let status = if resp.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(resp)))
}

/// Many cards at once (admin): each gets its result or its error, in order; one store
/// transaction for those that pass their checks.
async fn enroll_batch(State(ctx): State<Ctx>, raw: Bytes) -> Answer<dto::BatchResp> {
    let req: dto::BatchReq = decode(&raw)?;
    if req.cards.is_empty() || req.cards.len() > dto::MAX_BATCH {
        return Err(ApiError::field(
            "cards",
            format!("must hold 1 to {} cards", dto::MAX_BATCH),
        ));
    }
    let app = Arc::clone(&ctx.app);
    let results = tokio::task::spawn_blocking(move || app.enroll_batch(&req.cards))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((StatusCode::OK, Json(dto::BatchResp::new(results))))
}

/// Reverses an authorization the client sent (an acquirer's timeout or cancelled sale).
async fn reverse(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    raw: Bytes,
) -> Answer<dto::ReversalResp> {
    let req: dto::ReversalReq = decode(&raw)?;
    let r = ctx.app.reverse(req.to_domain()?, &client).await?;
    let resp = dto::ReversalResp {
        authorization_id: r.authorization_id,
        reversed: true,
        first: r.first,
    };
    Ok((StatusCode::OK, Json(resp)))
}

/// Holds, newest first (admin): `?state=open|released|refused|expired&limit=N`.
async fn holds(
    State(ctx): State<Ctx>,
    axum::extract::Query(q): axum::extract::Query<dto::ListQuery>,
) -> Answer<Vec<dto::HoldResp>> {
    let limit = q.limit()?;
    let state = q.state_in(&["open", "released", "refused", "expired"])?;
    let app = Arc::clone(&ctx.app);
    let now = cardguard_core::Clock::now(&cardguard_core::SystemClock).0;
    // The holds of the last 30 days (an open one expires long before).
    let since = now - 30 * 86_400_000;
    let rows = tokio::task::spawn_blocking(move || app.holds().recent(since, 10_000))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let out = rows
        .iter()
        .filter(|h| state.is_none_or(|s| h.state(now) == s))
        .take(limit)
        .map(|h| dto::HoldResp::from_row(h, now))
        .collect();
    Ok((StatusCode::OK, Json(out)))
}

/// The answer to a hold given for the cardholder (admin: the issuer's app or call centre).
async fn answer_hold(
    State(ctx): State<Ctx>,
    axum::extract::Path(authorization_id): axum::extract::Path<String>,
    raw: Bytes,
) -> Answer<dto::AnswerResp> {
    let req: dto::AnswerReq = decode(&raw)?;
    let yes = req.yes()?;
    let a = ctx.app.answer(&authorization_id, yes, "api").await?;
    Ok((
        StatusCode::OK,
        Json(dto::AnswerResp {
            authorization_id: a.authorization_id,
            answer: if a.yes { "yes" } else { "no" }.into(),
            first: a.first,
        }),
    ))
}

/// Notifications by state, newest first (admin): `?state=pending|sent|dead&limit=N`.
async fn notifications(
    State(ctx): State<Ctx>,
    axum::extract::Query(q): axum::extract::Query<dto::ListQuery>,
) -> Answer<Vec<dto::NotificationResp>> {
    let limit = q.limit()?;
    let state = q
        .state_in(&["pending", "sent", "dead"])?
        .and_then(cardguard_store::OutboxState::parse)
        .unwrap_or(cardguard_store::OutboxState::Dead);
    let app = Arc::clone(&ctx.app);
    let rows = tokio::task::spawn_blocking(move || app.outbox().list(state, limit))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        Json(rows.iter().map(dto::NotificationResp::from_row).collect()),
    ))
}

/// Puts a dead notification back in the queue (admin), once its cause is fixed.
async fn retry_notification(
    State(ctx): State<Ctx>,
    axum::extract::Path(key): axum::extract::Path<String>,
) -> Answer<serde_json::Value> {
    let app = Arc::clone(&ctx.app);
    let now = cardguard_core::Clock::now(&cardguard_core::SystemClock).0;
    let k = key.clone();
    let done = tokio::task::spawn_blocking(move || app.outbox().retry(&k, now))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if !done {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no dead notification {key}"),
        ));
    }
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"key": key, "state": "pending"})),
    ))
}

async fn label(State(ctx): State<Ctx>, raw: Bytes) -> Answer<dto::LabelResp> {
    let req: dto::LabelReq = decode(&raw)?;
    req.validate()?;
    let token = ctx
        .app
        .label(&req.authorization_id, req.fraud, req.source.clone())
        .await?;
    let resp = dto::LabelResp {
        authorization_id: req.authorization_id,
        fraud: req.fraud,
        card_token: token.to_string(),
    };
    Ok((StatusCode::OK, Json(resp)))
}

async fn stats(State(ctx): State<Ctx>) -> Result<Json<cardguard_app::Stats>, ApiError> {
    let app = Arc::clone(&ctx.app);
    let stats = tokio::task::spawn_blocking(move || app.stats())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(stats))
}

/// Reads `mail.brands_file` again (admin); a bad file changes nothing and says why.
async fn reload_brands(State(ctx): State<Ctx>) -> Result<Json<serde_json::Value>, ApiError> {
    let app = std::sync::Arc::clone(&ctx.app);
    let n = tokio::task::spawn_blocking(move || app.reload_brands())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_brands", e.to_string()))?;
    Ok(Json(serde_json::json!({ "brands": n })))
}

/// Reads `engine.model_file` again and swaps the model in (admin); a bad file changes
/// nothing and says why.
async fn reload_model(State(ctx): State<Ctx>) -> Result<Json<serde_json::Value>, ApiError> {
    let app = std::sync::Arc::clone(&ctx.app);
    let version = tokio::task::spawn_blocking(move || app.reload_model())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_model", e.to_string()))?;
    Ok(Json(serde_json::json!({ "model": version })))
}

/// The model deciding now and how far live traffic has drifted from its training data.
async fn model_status(State(ctx): State<Ctx>) -> Json<cardguard_app::drift::DriftReport> {
    Json(ctx.app.drift().report())
}

/// The phishing analyzer: the raw RFC 5322 message is the body.
async fn mail_scan(
    State(ctx): State<Ctx>,
    body: Bytes,
) -> Result<Json<cardguard_phish::Report>, ApiError> {
    let report = ctx
        .app
        .scan_mail(body.to_vec())
        .await?
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_message", e))?;
    Ok(Json(report))
}

/// Routes whose calls are the traffic cardguard serves, not actions of the issuer's people:
/// left out of the audit trail (their events are in the event log).
fn is_traffic(path: &str) -> bool {
    matches!(
        path,
        "/v1/authorizations"
            | "/v1/reversals"
            | "/v1/authentications"
            | "/v1/mail/scan"
            | "/v1/passwords/check"
    ) || (path.starts_with("/v1/authentications/")
        && (path.ends_with("/challenge") || path.ends_with("/resend")))
}

/// Appends every change an API key made (POST, PUT, DELETE, other than the traffic) to the
/// audit trail: the key's name, the method, the path (card numbers masked) and the status.
async fn audit_actions(
    State(ctx): State<Ctx>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    let changes = matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE);
    let who = req.extensions().get::<ClientId>().cloned();
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let r = next.run(req).await;
    if let (true, Some(who)) = (changes, who)
        && !is_traffic(&path)
    {
        let status = r.status().as_u16().to_string();
        audit(&ctx, format!("key:{}", who.as_str()), method, path, status).await;
    }
    r
}

/// Appends an entry to the audit trail off the async workers (it syncs to disk).
pub(crate) async fn audit(
    ctx: &Ctx,
    actor: String,
    action: String,
    target: String,
    outcome: String,
) {
    let app = Arc::clone(&ctx.app);
    let done =
        tokio::task::spawn_blocking(move || app.audit(&actor, &action, &target, &outcome)).await;
    if let Err(e) = done {
        tracing::error!(error = %e, "audit task");
    }
}

/// Counts every answer with an error status.
async fn count_refusals(State(ctx): State<Ctx>, r: Response) -> Response {
    let s = r.status().as_u16();
    if s >= 400 {
        ctx.app.metrics.refused(s);
    }
    r
}

/// Prometheus metrics (the gate asks for a key with the `metrics` or `admin` scope).
async fn metrics(State(ctx): State<Ctx>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        ctx.app.metrics_text(),
    )
        .into_response()
}

/// The OpenAPI document of this API (public: it describes, it holds nothing).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// 200 while authorizations can be taken (`ok`, or `degraded` when something needs an
/// operator), 503 when they cannot. Load balancers probe it without a key and get the
/// status; with an admin or metrics key the problems are named too.
async fn health(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let app = Arc::clone(&ctx.app);
    let Ok(h) = tokio::task::spawn_blocking(move || app.health()).await else {
        return ApiError::internal("health check failed").into_response();
    };
    let status = if h.is_available() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = if require(&ctx.keys, &headers, &[Scope::Admin, Scope::Metrics]).is_ok() {
        serde_json::json!({"status": h.status, "problems": h.problems})
    } else {
        serde_json::json!({"status": h.status})
    };
    (status, Json(body)).into_response()
}
