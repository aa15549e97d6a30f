//! Prometheus metrics. Process-local ones (HTTP requests and their latency,
//! job run and wait times of the workers in this process) go through the
//! `metrics` facade and its Prometheus recorder; fleet-wide ones (job
//! counters, queue depths, live workers) are read from Redis at each scrape,
//! so every API process reports the same totals.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sluice_engine::{BreakerStatus, Stats};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds buckets for latency histograms: 0.5 ms to 5 min.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// How often the recorder's upkeep runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Install the process-wide recorder (once; later calls reuse it), with a
/// thread that runs its upkeep.
pub fn install_recorder() -> &'static PrometheusHandle {
    let mut installed = false;
    let handle = HANDLE.get_or_init(|| {
        installed = true;
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => {
                describe();
                handle
            }
            // Another recorder is installed: render ours (empty) anyway.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    });
    if installed {
        // Histogram samples wait in a buffer until the upkeep (or a
        // scrape) folds them into their buckets: a process nobody scrapes
        // would keep every sample it ever took.
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    handle.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the metrics upkeep");
        }
    }
    handle
}

/// A method as a label: one of the methods HTTP defines, or `other`. Hyper
/// takes any token as a method, and every label set lives as long as the
/// process, so a label may never be what a stranger chose.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Help texts of the process-local metrics (Prometheus wants one each).
fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(
        "sluice_http_requests_total",
        "HTTP requests answered, by method, route and status."
    );
    metrics::describe_histogram!(
        "sluice_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request."
    );
    metrics::describe_histogram!(
        "sluice_job_wait_seconds",
        Unit::Seconds,
        "Time from a job's enqueue to its start (a delay included), on this process's workers."
    );
    metrics::describe_histogram!(
        "sluice_job_run_seconds",
        Unit::Seconds,
        "Time a handler ran, on this process's workers."
    );
    metrics::describe_counter!(
        "sluice_redis_retries_total",
        "Redis calls retried after a transient failure, by operation."
    );
    metrics::describe_counter!(
        "sluice_redis_backoffs_total",
        "Backoffs of a worker loop while Redis was failing, by queue and loop."
    );
    metrics::describe_gauge!(
        "sluice_redis_failing",
        "1 while a worker loop cannot reach Redis, by queue and loop."
    );
}

/// Middleware answering 405 to a method HTTP does not define, before any
/// other middleware: no key is checked, nothing is counted or logged for it.
pub async fn refuse_unknown_methods(request: Request, next: Next) -> Response {
    if method_label(request.method()) == "other" {
        return crate::error::ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this server takes only the methods HTTP defines",
        )
        .into_response();
    }
    next.run(request).await
}

/// Middleware counting requests by method, route and status, with latency.
pub async fn track(
    axum::extract::State(api_latency): axum::extract::State<sluice_engine::alerting::LatencySeries>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("sluice_http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    let took = started.elapsed();
    metrics::histogram!("sluice_http_request_duration_seconds", "method" => method, "route" => route)
        .record(took.as_secs_f64());
    // The fleet-wide series the api_latency alert reads: requests someone
    // authenticated (an API key, a webhook's token; anyone in open mode),
    // so that a stranger's slow requests cannot fire it.
    if response.extensions().get::<crate::Actor>().is_some() {
        api_latency.record(took);
    }
    response
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A fleet-wide counter: name, help, how to read it from a queue's stats.
type Counter = (&'static str, &'static str, fn(&Stats) -> u64);

/// The fleet-wide part of a scrape, in the Prometheus text format.
pub fn render_fleet(
    stats: &[Stats],
    breakers: &[BreakerStatus],
    live_workers: usize,
    in_flight: usize,
) -> String {
    let mut out = String::new();
    let counters: [Counter; 5] = [
        ("sluice_jobs_enqueued_total", "Jobs enqueued.", |s| {
            s.enqueued_total
        }),
        ("sluice_jobs_completed_total", "Jobs completed.", |s| {
            s.completed_total
        }),
        ("sluice_jobs_failed_total", "Attempts failed.", |s| {
            s.failed_total
        }),
        ("sluice_jobs_retried_total", "Retries scheduled.", |s| {
            s.retried_total
        }),
        ("sluice_jobs_dead_total", "Jobs dead-lettered.", |s| {
            s.dead_total
        }),
    ];
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for s in stats {
            let _ = writeln!(out, "{name}{{queue=\"{}\"}} {}", escape(&s.queue), get(s));
        }
    }
    let _ = writeln!(
        out,
        "# HELP sluice_queue_jobs Jobs in the queue by state.\n# TYPE sluice_queue_jobs gauge"
    );
    for s in stats {
        let q = escape(&s.queue);
        for (state, n) in [
            ("waiting", s.waiting),
            ("active", s.active),
            ("delayed", s.delayed),
            ("dead", s.dead),
        ] {
            let _ = writeln!(
                out,
                "sluice_queue_jobs{{queue=\"{q}\",state=\"{state}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sluice_queue_waiting Ready jobs by priority level.\n# TYPE sluice_queue_waiting gauge"
    );
    for s in stats {
        let q = escape(&s.queue);
        for (level, n) in s.waiting_by_priority.iter().enumerate() {
            let _ = writeln!(
                out,
                "sluice_queue_waiting{{queue=\"{q}\",priority=\"{level}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sluice_queue_paused 1 when the queue is paused.\n# TYPE sluice_queue_paused gauge"
    );
    for s in stats {
        let _ = writeln!(
            out,
            "sluice_queue_paused{{queue=\"{}\"}} {}",
            escape(&s.queue),
            u8::from(s.paused)
        );
    }
    let _ = writeln!(
        out,
        "# HELP sluice_breaker_state Circuit breaker state: 0 closed, 1 open, 2 half-open.\n# TYPE sluice_breaker_state gauge"
    );
    for b in breakers {
        let _ = writeln!(
            out,
            "sluice_breaker_state{{target=\"{}\"}} {}",
            escape(&b.name),
            b.state.gauge()
        );
    }
    let _ = writeln!(
        out,
        "# HELP sluice_breaker_transitions_total Circuit breaker transitions, by the state entered.\n# TYPE sluice_breaker_transitions_total counter"
    );
    for b in breakers {
        let target = escape(&b.name);
        for (to, n) in [
            ("open", b.opened_total),
            ("half_open", b.half_opened_total),
            ("closed", b.closed_total),
        ] {
            let _ = writeln!(
                out,
                "sluice_breaker_transitions_total{{target=\"{target}\",to=\"{to}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sluice_workers_active Live worker processes.\n# TYPE sluice_workers_active gauge\nsluice_workers_active {live_workers}"
    );
    let _ = writeln!(
        out,
        "# HELP sluice_worker_jobs_in_flight Jobs running on live workers.\n# TYPE sluice_worker_jobs_in_flight gauge\nsluice_worker_jobs_in_flight {in_flight}"
    );
    out
}

/// The process-local part of a scrape.
pub fn render_local() -> String {
    install_recorder().render()
}
