//! The Auth API's engine built from settings: everything a reload may change
//! (mapping, pipeline, cache policy, token limits), validated in full. Used
//! at start-up and by every reload.

use std::sync::Arc;

use crate::app::startup_error::StartupError;
use crate::config::Settings;
use crate::front::auth_api::card::CardBuilder;
use crate::lookup::cache::CachePolicy;
use crate::lookup::{Engine, Limits};
use crate::upstream::Pipeline;

/// Everything a reload may change, built and validated from `settings`.
pub fn build_engine(settings: &Settings) -> Result<Engine, StartupError> {
    settings.validate()?;
    // Read once: the card mapping, its pipeline and the digest share one text.
    let (file, text) = crate::mapping::read_file(&settings.auth_api.mapping)?;
    let cards = CardBuilder::from_text(&file, &text, &settings.auth_api)?
        .with_budget(settings.mapping.budget());
    let pipeline = Pipeline::from_mapping_text(&file, &text, &settings.upstream)?
        .map_or_else(|| Pipeline::from_settings(&settings.upstream), Ok)?;
    let options = format!(
        "{:?}{}",
        settings.auth_api.api_version, settings.auth_api.derive_fields
    );
    let mapping_digest = crate::secrets::digest(&[text.as_bytes(), options.as_bytes()].concat());
    Ok(Engine {
        producer: Arc::new(cards),
        pool: crate::mapping_pool::MappingPool::shared(&settings.mapping),
        pipeline,
        policy: CachePolicy::new(&settings.cache),
        limits: Limits {
            max_token_bytes: settings.server.max_token_bytes,
            request_timeout: settings.server.request_timeout,
            token_pattern: settings.server.token_pattern.clone(),
        },
        mapping_digest,
        mapping_file: settings.auth_api.mapping.display().to_string(),
        generation: 0,
    })
}
