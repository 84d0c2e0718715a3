//! The checked-in OpenAPI document is what the server serves.

use crate::support::TestApp;

#[tokio::test]
async fn checked_in_openapi_matches_what_the_server_serves() {
    let app = TestApp::spawn().await;
    let served: serde_json::Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/authd.json"))
        .expect("openapi/authd.json exists (authd openapi > openapi/authd.json)");
    let checked_in: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert!(served == checked_in, "the server does not serve openapi/authd.json");
    // The server serves the checked-in file; the code must still make exactly that document.
    assert!(
        file.trim_end() == authd::api::document_from_code(),
        "openapi/authd.json is stale: regenerate with `cargo run -- openapi > openapi/authd.json`"
    );
    let ops = served["paths"].as_object().unwrap();
    for path in [
        "/v1/auth/register",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/logout-all",
        "/v1/me",
        "/v1/me/sessions",
        "/v1/me/sessions/{id}",
        "/v1/me/password",
        "/v1/token/introspect",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/healthz",
        "/readyz",
    ] {
        assert!(ops.contains_key(path), "{path} documented");
    }
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), reqwest::StatusCode::OK);
    // Kept by the browser and asked again with its ETag: 2 MB only when it changed.
    assert_eq!(docs.headers()["cache-control"], "no-cache");
    let etag = docs.headers()["etag"].to_str().unwrap().to_owned();
    let page = docs.text().await.unwrap();
    assert!(page.contains("swagger"));
    // The page shows the finished document (with the rules added after poem-openapi).
    assert!(page.contains("\"additionalProperties\": false"), "Swagger UI shows a draft of the document");
    let again = app.http.get(app.url("/docs")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), reqwest::StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());
    let other = app.http.get(app.url("/docs")).header("if-none-match", "\"other\"").send().await.unwrap();
    assert_eq!(other.status(), reqwest::StatusCode::OK);

    // A browser at the root is sent to the documentation; an API client still gets the 404.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirects.get(app.url("/")).header("accept", "text/html,application/xhtml+xml").send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/docs");
    let r = no_redirects.get(app.url("/")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
}
