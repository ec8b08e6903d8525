//! The settings file: [`InjectorSettings`] as YAML (or JSON for a `.json` name). Missing keys
//! keep their defaults and unknown keys are refused (the serde form lives in crates/inject).

use std::path::Path;

use anyhow::Context as _;
use spiffe_helper_inject::InjectorSettings;

/// Reads `path`, or gives the defaults when there is none.
///
/// # Errors
/// The file cannot be read, or is not valid settings; the message names the file.
pub fn load(path: Option<&Path>) -> anyhow::Result<InjectorSettings> {
    let Some(path) = path else {
        return Ok(InjectorSettings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))?;
    parse(&text, path.extension().is_some_and(|ext| ext == "json"))
        .with_context(|| format!("invalid settings in {}", path.display()))
}

fn parse(text: &str, json: bool) -> anyhow::Result<InjectorSettings> {
    if json {
        return Ok(serde_json::from_str(text)?);
    }
    // An empty YAML document is no settings at all: the defaults.
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(InjectorSettings::default());
    }
    Ok(serde_saphyr::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::parse;
    use spiffe_helper_inject::InjectorSettings;

    #[test]
    fn yaml_settings_override_defaults() {
        let settings = parse("image: helper:2\nhealthPort: 9090\n", false).unwrap();
        assert_eq!(settings.image, "helper:2");
        assert_eq!(settings.health_port, 9090);
        assert_eq!(
            settings.injector_namespace,
            InjectorSettings::default().injector_namespace
        );
    }

    #[test]
    fn an_empty_or_comment_only_file_is_the_defaults() {
        assert_eq!(
            parse("# nothing\n\n", false).unwrap(),
            InjectorSettings::default()
        );
    }

    #[test]
    fn a_duplicate_yaml_key_is_refused() {
        let err = parse("image: a\nimage: b\n", false).unwrap_err();
        assert!(format!("{err:#}").contains("image"), "{err:#}");
    }

    #[test]
    fn an_unknown_key_is_refused_in_both_formats() {
        let err = parse("imag: a\n", false).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        let err = parse(r#"{"imag": "a"}"#, true).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }
}
