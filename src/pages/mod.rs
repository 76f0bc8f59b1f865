//! Customer-facing HTML pages.

/// The page for an unknown URL.
pub fn not_found_html() -> String {
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Page not found</title></head>\
<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem\">\
<h1>Page not found</h1><p>This link does not lead anywhere. If it came from an email, it may have \
been copied incompletely.</p></body></html>"
        .to_string()
}
