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
                "Quelle est la probabilité que vous recommandiez {brand} à un ami ou un collègue ?"
            }
            (Locale::En, SurveyKind::Csat) => "How satisfied were you with {topic}?",
            (Locale::De, SurveyKind::Csat) => "Wie zufrieden waren Sie mit {topic}?",
            (Locale::Fr, SurveyKind::Csat) => "Dans quelle mesure êtes-vous satisfait de {topic} ?",
        }
    }

    pub fn default_follow_up(self) -> &'static str {
        match self {
            Locale::En => "What is the main reason for your score?",
            Locale::De => "Was ist der wichtigste Grund für Ihre Bewertung?",
            Locale::Fr => "Quelle est la principale raison de votre note ?",
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
