//! The fraud model pipeline: labelled datasets (the engine's schema and the fraud detection
//! handbook's), features by replay through the engine's own feature function, a
//! gradient-boosted tree trainer, the handbook's evaluation protocol and its metrics, and the
//! model file. Reads and writes through `Read`/`Write`; the command opens the files.

pub mod backtest;
pub mod dataset;
pub mod evaluate;
pub mod gbdt;
pub mod import;
pub mod metrics;
/// The model file, which the engine owns so that serving needs no training code.
pub use cardguard_engine::model_file as model;
pub mod replay;
pub mod simulate;
pub mod tune;

pub use dataset::{Dataset, Schema, Transaction};
pub use gbdt::{TrainParams, train};
pub use model::Model;
pub use replay::{FeatureTable, HANDBOOK_FEATURES, ReplayConfig, replay};

/// What can go wrong in the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error("line {line}: {why}")]
    Format { line: u64, why: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] cardguard_engine::ModelError),
    #[error("io: {0}")]
    Io(std::io::Error),
}
