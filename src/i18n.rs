//! Customer-facing texts in the supported locales (English, German, French).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::SurveyKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    De,
    Fr,
}

impl Locale {
    pub const ALL: [Locale; 3] = [Locale::En, Locale::De, Locale::Fr];

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
            Locale::Fr => "fr",
        }
    }

    /// Accepts `de`, `DE`, `de-CH`, `de_AT`…
    pub fn parse(raw: &str) -> Option<Locale> {
        let lang = raw.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Locale::ALL.into_iter().find(|l| l.as_str() == lang)
    }

    /// The question asked when the survey sets none; `{brand}` and `{topic}` are filled in.
    pub fn default_question(self, kind: SurveyKind) -> &'static str {
        match (self, kind) {
            (Locale::En, SurveyKind::Nps) => {
                "How likely are you to recommend {brand} to a friend or colleague?"
            }
            (Locale::De, SurveyKind::Nps) => {
                "Wie wahrscheinlich ist es, dass Sie {brand} einem Freund oder Kollegen empfehlen?"
            }
            (Locale::Fr, SurveyKind::Nps) => {
                "Quelle est la probabilité que vous recommandiez {brand} à un ami ou un collègue\u{202F}?"
            }
            (Locale::En, SurveyKind::Csat) => "How satisfied were you with {topic}?",
            (Locale::De, SurveyKind::Csat) => "Wie zufrieden waren Sie mit {topic}?",
            (Locale::Fr, SurveyKind::Csat) => "Dans quelle mesure êtes-vous satisfait de {topic}\u{202F}?",
        }
    }

    pub fn default_follow_up(self) -> &'static str {
        match self {
            Locale::En => "What is the main reason for your score?",
            Locale::De => "Was ist der wichtigste Grund für Ihre Bewertung?",
            Locale::Fr => "Quelle est la principale raison de votre note\u{202F}?",
        }
    }

    /// Fills `{brand}` and `{topic}` with the survey's values or neutral words.
    pub fn fill(self, template: &str, brand: Option<&str>, topic: Option<&str>) -> String {
        let (us, service) = match self {
            Locale::En => ("us", "our service"),
            Locale::De => ("uns", "unserem Service"),
            Locale::Fr => ("nous", "notre service"),
        };
        template
            .replace("{brand}", brand.unwrap_or(us))
            .replace("{topic}", topic.unwrap_or(service))
    }
}

/// Texts of the survey email.
pub struct EmailTexts {
    /// `{brand}` is filled in.
    pub subject: &'static str,
    pub reminder_prefix: &'static str,
    /// `{name}` is filled in.
    pub greeting_named: &'static str,
    pub greeting: &'static str,
    pub instruction: &'static str,
    pub nps_low: &'static str,
    pub nps_high: &'static str,
    pub csat_low: &'static str,
    pub csat_high: &'static str,
    pub open_in_browser: &'static str,
    /// `{brand}` is filled in.
    pub footer: &'static str,
    pub unsubscribe: &'static str,
    /// What goes between a label and its value: `": "`, in French `"\u{202F}: "`.
    pub colon: &'static str,
}

impl Locale {
    pub fn email(self) -> &'static EmailTexts {
        match self {
            Locale::En => &EmailTexts {
                subject: "A quick question from {brand}",
                reminder_prefix: "Reminder: ",
                greeting_named: "Hi {name},",
                greeting: "Hi,",
                instruction: "Choose a score, then press Send on the page that opens. It takes a few seconds.",
                nps_low: "Not at all likely",
                nps_high: "Extremely likely",
                csat_low: "Very dissatisfied",
                csat_high: "Very satisfied",
                open_in_browser: "Or answer in your browser:",
                footer: "You are receiving this email because you are a customer of {brand}.",
                unsubscribe: "Unsubscribe from these surveys",
                colon: ": ",
            },
            Locale::De => &EmailTexts {
                subject: "Eine kurze Frage von {brand}",
                reminder_prefix: "Erinnerung: ",
                greeting_named: "Hallo {name},",
                greeting: "Hallo,",
                instruction: "Wählen Sie eine Bewertung und klicken Sie dann auf der geöffneten Seite auf „Senden“. Es dauert nur wenige Sekunden.",
                nps_low: "Überhaupt nicht wahrscheinlich",
                nps_high: "Äußerst wahrscheinlich",
                csat_low: "Sehr unzufrieden",
                csat_high: "Sehr zufrieden",
                open_in_browser: "Oder antworten Sie im Browser:",
                footer: "Sie erhalten diese E-Mail, weil Sie Kunde von {brand} sind.",
                unsubscribe: "Diese Umfragen abbestellen",
                colon: ": ",
            },
            Locale::Fr => &EmailTexts {
                subject: "Une petite question de {brand}",
                reminder_prefix: "Rappel\u{202F}: ",
                greeting_named: "Bonjour {name},",
                greeting: "Bonjour,",
                instruction: "Choisissez une note, puis appuyez sur «\u{202F}Envoyer\u{202F}» sur la page qui s'ouvre. Cela ne prend que quelques secondes.",
                nps_low: "Pas du tout probable",
                nps_high: "Très probable",
                csat_low: "Très insatisfait",
                csat_high: "Très satisfait",
                open_in_browser: "Ou répondez dans votre navigateur\u{202F}:",
                footer: "Vous recevez cet e-mail parce que vous êtes client de {brand}.",
                unsubscribe: "Se désabonner de ces enquêtes",
                colon: "\u{202F}: ",
            },
        }
    }
}

/// Texts of the customer pages.
pub struct PageTexts {
    pub send: &'static str,
    pub save_comment: &'static str,
    pub comment_hint: &'static str,
    pub thanks_title: &'static str,
    pub thanks_body: &'static str,
    pub your_score: &'static str,
    pub change_answer: &'static str,
    pub add_comment: &'static str,
    pub saved: &'static str,
    pub choose_score: &'static str,
    /// `{max}` is filled in.
    pub comment_too_long: &'static str,
    pub fix_below: &'static str,
    pub not_found_title: &'static str,
    pub not_found_body: &'static str,
    pub gone_title: &'static str,
    pub gone_body: &'static str,
    pub closed_title: &'static str,
    pub closed_body: &'static str,
    pub too_many_title: &'static str,
    pub too_many_body: &'static str,
    pub unsubscribe_title: &'static str,
    /// `{brand}` is filled in.
    pub unsubscribe_body: &'static str,
    pub unsubscribe_button: &'static str,
    pub unsubscribed_title: &'static str,
    /// `{brand}` is filled in.
    pub unsubscribed_body: &'static str,
    pub scale_hint: &'static str,
    /// What goes between a label and its value: `": "`, in French `"\u{202F}: "`.
    pub colon: &'static str,
    /// After "Your score: N," on a page opened from an email's score link.
    pub not_sent_yet: &'static str,
    /// The second submit button, under the comment, when Send sits under the scale.
    pub send_with_comment: &'static str,
    /// `{score}` and `{date}` are filled in.
    pub answered_on: &'static str,
    /// `{date}` is filled in.
    pub change_until: &'static str,
    pub your_answer: &'static str,
    pub your_comment: &'static str,
    pub comment_saved: &'static str,
    pub email_address: &'static str,
    pub resubscribe_button: &'static str,
    /// `{date}` is filled in.
    pub resubscribe_hint: &'static str,
    pub resubscribed_title: &'static str,
    /// `{brand}` is filled in.
    pub resubscribed_body: &'static str,
    pub invalid_title: &'static str,
    pub invalid_body: &'static str,
    /// Title of the neutral error pages (no survey known).
    pub error_title: &'static str,
    pub months: [&'static str; 12],
}

impl Locale {
    pub fn page(self) -> &'static PageTexts {
        match self {
            Locale::En => &PageTexts {
                send: "Send",
                save_comment: "Save comment",
                comment_hint: "Optional",
                thanks_title: "Thank you!",
                thanks_body: "Your answer has been recorded.",
                your_score: "Your score",
                change_answer: "Change your answer",
                add_comment: "Anything you want to add?",
                saved: "Saved.",
                choose_score: "Please choose a score.",
                comment_too_long: "Please keep your comment under {max} characters.",
                fix_below: "Please check your answer:",
                not_found_title: "Survey not found",
                not_found_body: "This link does not lead to a survey. If it came from an email, it may have been copied incompletely.",
                gone_title: "This survey is closed",
                gone_body: "This survey no longer accepts answers. Thank you for your time.",
                closed_title: "This answer can no longer be changed",
                closed_body: "The time to change this answer has passed. Your earlier answer is kept.",
                too_many_title: "Too many requests",
                too_many_body: "Please wait a minute and try again.",
                unsubscribe_title: "Unsubscribe",
                unsubscribe_body: "Stop receiving feedback surveys from {brand}?",
                unsubscribe_button: "Unsubscribe",
                unsubscribed_title: "You are unsubscribed",
                unsubscribed_body: "You will not receive feedback surveys from {brand} any more.",
                scale_hint: "Choose a score",
                colon: ": ",
                not_sent_yet: "not sent yet",
                send_with_comment: "Send with comment",
                answered_on: "You answered {score} on {date}.",
                change_until: "You can change your answer until {date}.",
                your_answer: "Your answer",
                your_comment: "Your comment",
                comment_saved: "Your comment was saved.",
                email_address: "Email address",
                resubscribe_button: "Re-subscribe",
                resubscribe_hint: "Changed your mind? You can re-subscribe until {date}.",
                resubscribed_title: "You are subscribed again",
                resubscribed_body: "You may receive feedback surveys from {brand} again.",
                invalid_title: "This link is no longer valid",
                invalid_body: "This survey link has been deactivated. There is nothing more to do.",
                error_title: "Error",
                months: ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"],
            },
            Locale::De => &PageTexts {
                send: "Senden",
                save_comment: "Kommentar speichern",
                comment_hint: "Optional",
                thanks_title: "Vielen Dank!",
                thanks_body: "Ihre Antwort wurde gespeichert.",
                your_score: "Ihre Bewertung",
                change_answer: "Antwort ändern",
                add_comment: "Möchten Sie noch etwas ergänzen?",
                saved: "Gespeichert.",
                choose_score: "Bitte wählen Sie eine Bewertung.",
                comment_too_long: "Bitte fassen Sie Ihren Kommentar in weniger als {max} Zeichen.",
                fix_below: "Bitte prüfen Sie Ihre Antwort:",
                not_found_title: "Umfrage nicht gefunden",
                not_found_body: "Dieser Link führt zu keiner Umfrage. Falls er aus einer E-Mail stammt, wurde er vielleicht unvollständig kopiert.",
                gone_title: "Diese Umfrage ist beendet",
                gone_body: "Diese Umfrage nimmt keine Antworten mehr an. Vielen Dank für Ihre Zeit.",
                closed_title: "Diese Antwort kann nicht mehr geändert werden",
                closed_body: "Die Frist zum Ändern ist abgelaufen. Ihre bisherige Antwort bleibt erhalten.",
                too_many_title: "Zu viele Anfragen",
                too_many_body: "Bitte warten Sie eine Minute und versuchen Sie es erneut.",
                unsubscribe_title: "Abbestellen",
                unsubscribe_body: "Keine Feedback-Umfragen mehr von {brand} erhalten?",
                unsubscribe_button: "Abbestellen",
                unsubscribed_title: "Sie sind abgemeldet",
                unsubscribed_body: "Sie erhalten keine Feedback-Umfragen von {brand} mehr.",
                scale_hint: "Wählen Sie eine Bewertung",
                colon: ": ",
                not_sent_yet: "noch nicht gesendet",
                send_with_comment: "Mit Kommentar senden",
                answered_on: "Sie haben am {date} mit {score} geantwortet.",
                change_until: "Sie können Ihre Antwort bis {date} ändern.",
                your_answer: "Ihre Antwort",
                your_comment: "Ihr Kommentar",
                comment_saved: "Ihr Kommentar wurde gespeichert.",
                email_address: "E-Mail-Adresse",
                resubscribe_button: "Wieder anmelden",
                resubscribe_hint: "Anders entschieden? Sie können sich bis zum {date} wieder anmelden.",
                resubscribed_title: "Sie sind wieder angemeldet",
                resubscribed_body: "Sie können wieder Feedback-Umfragen von {brand} erhalten.",
                invalid_title: "Dieser Link ist nicht mehr gültig",
                invalid_body: "Dieser Umfragelink wurde deaktiviert. Sie müssen nichts weiter tun.",
                error_title: "Fehler",
                months: ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"],
            },
            Locale::Fr => &PageTexts {
                send: "Envoyer",
                save_comment: "Enregistrer le commentaire",
                comment_hint: "Facultatif",
                thanks_title: "Merci\u{202F}!",
                thanks_body: "Votre réponse a été enregistrée.",
                your_score: "Votre note",
                change_answer: "Modifier votre réponse",
                add_comment: "Souhaitez-vous ajouter quelque chose\u{202F}?",
                saved: "Enregistré.",
                choose_score: "Veuillez choisir une note.",
                comment_too_long: "Veuillez limiter votre commentaire à {max} caractères.",
                fix_below: "Veuillez vérifier votre réponse\u{202F}:",
                not_found_title: "Enquête introuvable",
                not_found_body: "Ce lien ne mène à aucune enquête. S'il provient d'un e-mail, il a peut-être été copié de façon incomplète.",
                gone_title: "Cette enquête est close",
                gone_body: "Cette enquête n'accepte plus de réponses. Merci pour votre temps.",
                closed_title: "Cette réponse ne peut plus être modifiée",
                closed_body: "Le délai de modification est écoulé. Votre réponse précédente est conservée.",
                too_many_title: "Trop de requêtes",
                too_many_body: "Veuillez patienter une minute puis réessayer.",
                unsubscribe_title: "Se désabonner",
                unsubscribe_body: "Ne plus recevoir d'enquêtes de satisfaction de {brand}\u{202F}?",
                unsubscribe_button: "Se désabonner",
                unsubscribed_title: "Vous êtes désabonné",
                unsubscribed_body: "Vous ne recevrez plus d'enquêtes de satisfaction de {brand}.",
                scale_hint: "Choisissez une note",
                colon: "\u{202F}: ",
                not_sent_yet: "pas encore envoyée",
                send_with_comment: "Envoyer avec le commentaire",
                answered_on: "Vous avez répondu {score} le {date}.",
                change_until: "Vous pouvez modifier votre réponse jusqu'au {date}.",
                your_answer: "Votre réponse",
                your_comment: "Votre commentaire",
                comment_saved: "Votre commentaire a été enregistré.",
                email_address: "Adresse e-mail",
                resubscribe_button: "Se réabonner",
                resubscribe_hint: "Vous avez changé d'avis\u{202F}? Vous pouvez vous réabonner jusqu'au {date}.",
                resubscribed_title: "Vous êtes de nouveau abonné",
                resubscribed_body: "Vous pourrez de nouveau recevoir des enquêtes de satisfaction de {brand}.",
                invalid_title: "Ce lien n'est plus valide",
                invalid_body: "Ce lien d'enquête a été désactivé. Vous n'avez rien d'autre à faire.",
                error_title: "Erreur",
                months: ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"],
            },
        }
    }

    /// A UTC time as people of this locale write it, e.g. `25 November 2026, 14:03 UTC`,
    /// `25. November 2026, 14:03 UTC`, `25 novembre 2026, 14:03 UTC`.
    pub fn datetime(self, t: chrono::NaiveDateTime) -> String {
        format!("{}, {} UTC", self.date(t.date()), t.format("%H:%M"))
    }

    /// A date, e.g. `25 November 2026`, `25. November 2026`, `25 novembre 2026`.
    pub fn date(self, d: chrono::NaiveDate) -> String {
        use chrono::Datelike;
        let month = self.page().months[d.month0() as usize];
        match self {
            Locale::De => format!("{}. {month} {}", d.day(), d.year()),
            _ => format!("{} {month} {}", d.day(), d.year()),
        }
    }

    /// The best supported locale of an `Accept-Language` header (weights honoured).
    pub fn from_accept_language(header: Option<&str>) -> Option<Locale> {
        let header = header?;
        let mut best: Option<(f32, Locale)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim();
            let q = pieces
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|v| v.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            if let Some(locale) = Locale::parse(tag) {
                if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, locale));
                }
            }
        }
        best.map(|(_, l)| l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_parse_from_tags() {
        assert_eq!(Locale::parse("de-CH"), Some(Locale::De));
        assert_eq!(Locale::parse("FR"), Some(Locale::Fr));
        assert_eq!(Locale::parse("es"), None);
    }

    #[test]
    fn accept_language_picks_the_best_supported() {
        assert_eq!(
            Locale::from_accept_language(Some("es, fr;q=0.8, de;q=0.9")),
            Some(Locale::De)
        );
        assert_eq!(
            Locale::from_accept_language(Some("fr-CA")),
            Some(Locale::Fr)
        );
        assert_eq!(Locale::from_accept_language(Some("es, it")), None);
        assert_eq!(Locale::from_accept_language(None), None);
    }

    #[test]
    fn placeholders_are_filled() {
        let q = Locale::En.fill(
            Locale::En.default_question(SurveyKind::Nps),
            Some("Acme"),
            None,
        );
        assert_eq!(
            q,
            "How likely are you to recommend Acme to a friend or colleague?"
        );
        let q = Locale::En.fill(Locale::En.default_question(SurveyKind::Csat), None, None);
        assert_eq!(q, "How satisfied were you with our service?");
    }
}
