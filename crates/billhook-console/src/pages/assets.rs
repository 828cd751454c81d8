//! The console's static files, vendored (`assets/`, with their licences) and built into the
//! binary: no CDN, no Node build step. Names carry their version, so they are cached for a day.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

/// htmx 2.0.11 (Zero-Clause BSD), uPlot 1.6.32 (MIT) and the console's own CSS.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx-2.0.11.min.js",
        "text/javascript",
        include_bytes!("../../assets/htmx-2.0.11.min.js"),
    ),
    (
        "uPlot-1.6.32.iife.min.js",
        "text/javascript",
        include_bytes!("../../assets/uPlot-1.6.32.iife.min.js"),
    ),
    (
        "uPlot-1.6.32.min.css",
        "text/css",
        include_bytes!("../../assets/uPlot-1.6.32.min.css"),
    ),
    (
        "console.css",
        "text/css",
        include_bytes!("../../assets/console.css"),
    ),
    (
        "overview.js",
        "text/javascript",
        include_bytes!("../../assets/overview.js"),
    ),
];

pub async fn serve(name: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(*body),
        None => HttpResponse::NotFound().body("no such file"),
    }
}
