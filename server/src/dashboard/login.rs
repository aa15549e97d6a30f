//! The login form, login (API key, throttled per client) and logout.

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sluice_dashboard::pages::LoginPage;
use sluice_dashboard::session::{self, Access};
use std::net::SocketAddr;
use std::time::Duration;

use super::{
    ActionForm, DashError, DashResult, LOGIN_ATTEMPTS_PER_MINUTE, now_secs, operator, render,
    session_token,
};
use crate::AppState;
use crate::requests::Actor;
use crate::settings::Scope;

pub(super) async fn login_form(State(state): State<AppState>) -> Response {
    if state.shared.keys.is_empty() {
        return Redirect::to("/dashboard").into_response();
    }
    render(&LoginPage { error: None }).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    key: String,
}

pub(super) async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if state.shared.keys.is_empty() {
        return Redirect::to("/dashboard").into_response();
    }
    let refused = |status: StatusCode, message: &str| {
        (
            status,
            render(&LoginPage {
                error: Some(message.to_owned()),
            }),
        )
            .into_response()
    };
    // Throttled across API processes: failed attempts per client address
    // (behind `api.trusted_proxies`, the address `X-Forwarded-For` names),
    // logins with a valid key per key name and address. So one client's
    // guesses never lock out an operator elsewhere, nor a valid key at all.
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let trusted = state.trusted_proxies.clone();
    let source = crate::client_ip::client_address(peer, &headers, &trusted)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
        .replace(':', "-");
    let hash = crate::key_hash(form.key.trim());
    let known = state.shared.keys.get(&hash);
    // Per key by its hash, not its name: a name may be long, and a window's
    // name has a limit.
    let window = match known {
        Some(_) => format!("dashboard-login-{}-{source}", &hash[..16]),
        None => format!("dashboard-login-{source}"),
    };
    match state
        .client
        .limits()
        .count_request(&window, LOGIN_ATTEMPTS_PER_MINUTE, Duration::from_secs(60))
        .await
    {
        Ok(None) => {}
        Ok(Some(_)) => {
            return refused(
                StatusCode::TOO_MANY_REQUESTS,
                "too many attempts: wait a minute",
            );
        }
        Err(_) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Redis is unreachable; try again shortly",
            );
        }
    }
    let Some(key) = known else {
        return refused(StatusCode::UNAUTHORIZED, "unknown API key");
    };
    let access = match key.scope {
        Scope::Admin => Access::Admin,
        Scope::Read => Access::Read,
    };
    let s = state
        .shared
        .sessions
        .start(&key.name, &hash, access, now_secs());
    let secure = crate::client_ip::over_https(peer, &headers, &trusted);
    let mut response = Redirect::to("/dashboard").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        &state.shared.sessions.seal(&s),
        secure,
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response.extensions_mut().insert(Actor(key.name.clone()));
    response
}

pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    if !state
        .shared
        .sessions
        .csrf_ok(&op.session, form.csrf.as_deref().unwrap_or(""))
    {
        return Err(DashError::status(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token",
        ));
    }
    // Ended server-side too: the cookie, copied or not, opens nothing.
    if !state.shared.keys.is_empty() {
        let left = (op.session.expires - now_secs()).max(1) as u64;
        state
            .client
            .limits()
            .revoke(&session_token(&op.session), Duration::from_secs(left))
            .await?;
    }
    let mut response = op.acted("/dashboard/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}
