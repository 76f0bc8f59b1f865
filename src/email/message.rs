//! The survey email: multipart plain text + HTML, one-click score links, List-Unsubscribe.

use askama::Template;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::config::Settings;
use crate::domain::SurveyKind;
use crate::i18n::Locale;
use crate::store::models::SurveyRow;

pub const DEFAULT_COLOR: &str = "#1f6feb";

/// One score button: the score and the link that preselects it.
pub struct Button {
    pub score: i32,
    pub url: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "email/survey.html")]
struct SurveyHtml<'a> {
    lang: &'a str,
    subject: &'a str,
    brand: &'a str,
    /// The brand colour where it meets white (see `on_white`).
    brand_ink: &'a str,
    color: &'a str,
    button_text: &'a str,
    link_color: &'a str,
    greeting: &'a str,
    question: &'a str,
    instruction: &'a str,
    buttons: &'a [Button],
    cell_width: usize,
    low: &'a str,
    high: &'a str,
    browser_text: &'a str,
    survey_url: &'a str,
    footer: &'a str,
    unsubscribe_text: &'a str,
    unsubscribe_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/survey.txt")]
struct SurveyText<'a> {
    colon: &'a str,
    greeting: &'a str,
    question: &'a str,
    instruction: &'a str,
    buttons: &'a [Button],
    low: &'a str,
    high: &'a str,
    browser_text: &'a str,
    survey_url: &'a str,
    footer: &'a str,
    unsubscribe_text: &'a str,
    unsubscribe_url: &'a str,
}

/// What a survey email needs to know about its invitation.
pub struct SurveyEmail<'a> {
    pub survey: &'a SurveyRow,
    pub invitation_id: &'a str,
    pub token: &'a str,
    pub to_email: &'a str,
    pub to_name: Option<&'a str>,
    pub reminder: bool,
}

/// The relative luminance of a `#rrggbb` colour (WCAG 2.x); unreadable input counts as black.
pub fn luminance(color: &str) -> f64 {
    let channel = |i: usize| {
        color
            .get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0) as f64
            / 255.0
    };
    let lin = |c: f64| {
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(channel(1)) + 0.7152 * lin(channel(3)) + 0.0722 * lin(channel(5))
}

/// The WCAG contrast ratio of two `#rrggbb` colours (1 to 21).
pub fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// The contrast that text needs (WCAG 2.x AA, normal text).
pub const MIN_CONTRAST: f64 = 4.5;

/// Text colour that reads well on `background` (`#rrggbb`): white when it reaches 4.5:1,
/// else dark.
pub fn text_on(background: &str) -> &'static str {
    if contrast(background, "#ffffff") >= MIN_CONTRAST {
        "#ffffff"
    } else {
        "#1f2328"
    }
}

/// The brand colour where it meets white (text, links, edges on a white page): the colour
/// itself when it reaches 4.5:1 against white, else a darker variant of the same hue that
/// does (`#ffd400` becomes a dark ochre).
pub fn on_white(color: &str) -> String {
    let valid = color.len() == 7
        && color.starts_with('#')
        && color[1..].chars().all(|c| c.is_ascii_hexdigit());
    if !valid {
        return DEFAULT_COLOR.to_string();
    }
    if contrast(color, "#ffffff") >= MIN_CONTRAST {
        return color.to_ascii_lowercase();
    }
    let rgb: Vec<f64> = (0..3)
        .map(|i| u8::from_str_radix(&color[1 + 2 * i..3 + 2 * i], 16).unwrap_or(0) as f64)
        .collect();
    // Scale the channels down until the contrast holds: the largest factor that works.
    let mut factor = 1.0;
    loop {
        factor -= 0.01;
        let c = format!(
            "#{:02x}{:02x}{:02x}",
            (rgb[0] * factor).round() as u8,
            (rgb[1] * factor).round() as u8,
            (rgb[2] * factor).round() as u8
        );
        if contrast(&c, "#ffffff") >= MIN_CONTRAST || factor <= 0.0 {
            return c;
        }
    }
}

/// Text made safe for a header (a display name or a subject): control characters (CR, LF,
/// tab, NUL, …) become spaces and runs of white space one space. The API refuses control
/// characters in these fields; this also covers rows stored before it did, or written
/// around it, so a stray line break can neither inject a header nor break the message.
pub fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rendered parts of a survey email: what the message carries, and what the workspace's
/// preview shows.
pub struct SurveyBody {
    pub subject: String,
    pub html: String,
    pub text: String,
    /// The sender name: the brand, else `SMTP_FROM`'s name, else "Closeloop".
    pub sender: String,
    pub unsubscribe_url: String,
}

/// Renders the survey email of `survey` for the invitation token `token` (the real
/// templates, in the survey's language).
pub fn survey_body(
    survey: &SurveyRow,
    to_name: Option<&str>,
    token: &str,
    reminder: bool,
    settings: &Settings,
) -> Result<SurveyBody, String> {
    let brand_clean = survey.brand.as_deref().map(header_text);
    let name_clean = to_name.map(header_text).filter(|n| !n.is_empty());
    let kind = SurveyKind::parse(&survey.kind).unwrap_or(SurveyKind::Nps);
    let locale = Locale::parse(&survey.locale).unwrap_or_default();
    let texts = locale.email();
    let brand_name = brand_clean.as_deref().filter(|b| !b.is_empty());
    let brand_shown =
        brand_name.unwrap_or_else(|| settings.smtp_from.name.as_deref().unwrap_or("Closeloop"));
    let question_template = survey
        .question
        .as_deref()
        .unwrap_or_else(|| locale.default_question(kind));
    let question = locale.fill(question_template, brand_name, survey.topic.as_deref());
    let greeting = match name_clean.as_deref() {
        Some(name) if !name.trim().is_empty() => {
            texts.greeting_named.replace("{name}", name.trim())
        }
        _ => texts.greeting.to_string(),
    };
    let mut subject = header_text(&texts.subject.replace("{brand}", brand_shown));
    if reminder {
        subject = format!("{}{subject}", texts.reminder_prefix);
    }
    let base = settings.public_url.as_str().trim_end_matches('/');
    let survey_url = format!("{base}/s/{}", token);
    let unsubscribe_url = format!("{base}/u/{}", token);
    let (lo, hi) = kind.range();
    let (low, high) = match kind {
        SurveyKind::Nps => (texts.nps_low, texts.nps_high),
        SurveyKind::Csat => (texts.csat_low, texts.csat_high),
    };
    let buttons: Vec<Button> = (lo..=hi)
        .map(|score| Button {
            score,
            url: format!("{survey_url}?score={score}"),
            label: match score {
                s if s == lo => format!("{score} – {low}"),
                s if s == hi => format!("{score} – {high}"),
                _ => score.to_string(),
            },
        })
        .collect();
    let color = survey.brand_color.as_deref().unwrap_or(DEFAULT_COLOR);
    let footer = texts.footer.replace("{brand}", brand_shown);
    let ink = on_white(color);
    let html = SurveyHtml {
        lang: locale.as_str(),
        subject: &subject,
        brand: brand_shown,
        brand_ink: &ink,
        color,
        button_text: text_on(color),
        link_color: &ink,
        greeting: &greeting,
        question: &question,
        instruction: texts.instruction,
        buttons: &buttons,
        cell_width: 100 / buttons.len().max(1),
        low,
        high,
        browser_text: texts.open_in_browser,
        survey_url: &survey_url,
        footer: &footer,
        unsubscribe_text: texts.unsubscribe,
        unsubscribe_url: &unsubscribe_url,
    }
    .render()
    .map_err(|err| format!("cannot render the HTML part: {err}"))?;
    let text = SurveyText {
        colon: texts.colon,
        greeting: &greeting,
        question: &question,
        instruction: texts.instruction,
        buttons: &buttons,
        low,
        high,
        browser_text: texts.open_in_browser,
        survey_url: &survey_url,
        footer: &footer,
        unsubscribe_text: texts.unsubscribe,
        unsubscribe_url: &unsubscribe_url,
    }
    .render()
    .map_err(|err| format!("cannot render the text part: {err}"))?;

    Ok(SurveyBody {
        subject,
        html,
        text,
        sender: brand_shown.to_string(),
        unsubscribe_url,
    })
}

/// Builds the message; returns it with its Message-ID (without angle brackets).
pub fn survey_email(e: &SurveyEmail<'_>, settings: &Settings) -> Result<(Message, String), String> {
    let body = survey_body(e.survey, e.to_name, e.token, e.reminder, settings)?;
    let name_clean = e.to_name.map(header_text).filter(|n| !n.is_empty());
    let SurveyBody {
        subject,
        html,
        text,
        sender: brand_shown,
        unsubscribe_url,
    } = body;
    let host = settings.public_url.host_str().unwrap_or("localhost");
    let message_id = format!(
        "{}{}@{host}",
        e.invitation_id,
        if e.reminder { ".reminder" } else { "" }
    );
    let from = Mailbox::new(
        Some(brand_shown.to_string()),
        settings.smtp_from.email.clone(),
    );
    let to = Mailbox::new(
        name_clean.clone(),
        e.to_email
            .parse()
            .map_err(|err| format!("invalid recipient {:?}: {err}", e.to_email))?,
    );
    let from_address = settings.smtp_from.email.to_string();
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{message_id}>")))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!(
                "<{unsubscribe_url}>, <mailto:{from_address}?subject=unsubscribe%20{}>",
                e.token
            ),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_string(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|err| format!("cannot build the message: {err}"))?;
    Ok((message, message_id))
}

/// A message from the outbox (alert, reply, digest): plain text, or text + HTML when the row
/// has an HTML body; threaded with `In-Reply-To`/`References` when it answers a survey email.
pub fn outbox_email(
    row: &crate::store::models::EmailRow,
    settings: &Settings,
) -> Result<(Message, String), String> {
    let host = settings.public_url.host_str().unwrap_or("localhost");
    let message_id = format!("{}@{host}", row.id);
    let from = Mailbox::new(
        row.from_name
            .as_deref()
            .map(header_text)
            .filter(|n| !n.is_empty())
            .or_else(|| settings.smtp_from.name.clone()),
        settings.smtp_from.email.clone(),
    );
    let to: Mailbox = row
        .to_address
        .parse()
        .map_err(|e| format!("invalid recipient {:?}: {e}", row.to_address))?;
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(header_text(&row.subject))
        .message_id(Some(format!("<{message_id}>")));
    if let Some(reply_to) = &row.reply_to {
        if let Ok(mb) = reply_to.parse::<Mailbox>() {
            builder = builder.reply_to(mb);
        }
    }
    if let Some(parent) = &row.in_reply_to {
        builder = builder
            .in_reply_to(format!("<{parent}>"))
            .references(format!("<{parent}>"));
    }
    if row.kind != "followup_reply" {
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ));
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(row.body_text.clone());
    let message = match &row.body_html {
        Some(html) => builder.multipart(
            MultiPart::alternative().singlepart(text).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
        ),
        None => builder.singlepart(text),
    }
    .map_err(|e| format!("cannot build the message: {e}"))?;
    Ok((message, message_id))
}

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The HTML page around an email to the team (alerts, digests, sign-in links): proportional
/// font, readable on a phone. `inner` is HTML; `title` is text.
pub fn team_page(title: &str, inner: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title></head>\
<body style=\"margin:0;padding:16px;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;color:#1f2328;background:#ffffff\">{inner}</body></html>",
        escape_html(title)
    )
}

#[cfg(test)]
mod tests {
    use super::{contrast, header_text, on_white, text_on, DEFAULT_COLOR};

    #[test]
    fn contrast_matches_wcag() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 0.01);
        assert!((contrast("#ffd400", "#ffffff") - 1.43).abs() < 0.01);
    }

    #[test]
    fn brand_colours_too_light_for_white_get_a_dark_variant() {
        assert_eq!(on_white("#0a7d4f"), "#0a7d4f");
        let dark = on_white("#ffd400");
        assert!(contrast(&dark, "#ffffff") >= 4.5, "{dark}");
        assert!(
            contrast(&dark, "#ffffff") < 5.0,
            "not darker than needed: {dark}"
        );
        assert!(contrast(&on_white("#ffffff"), "#ffffff") >= 4.5);
        assert_eq!(on_white("red"), DEFAULT_COLOR);
    }

    #[test]
    fn header_text_has_no_control_characters() {
        assert_eq!(
            header_text("Acme\r\nBcc: evil@example.com"),
            "Acme Bcc: evil@example.com"
        );
        assert_eq!(header_text("Eve\n"), "Eve");
        assert_eq!(header_text("a\u{0}b\tc"), "a b c");
    }

    #[test]
    fn button_text_keeps_contrast() {
        assert_eq!(text_on("#1f6feb"), "#ffffff");
        assert_eq!(text_on("#000000"), "#ffffff");
        assert_eq!(text_on("#ffd33d"), "#1f2328");
        assert_eq!(text_on("#ffffff"), "#1f2328");
    }
}
