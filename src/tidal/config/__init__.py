"""Config files: loading, object specs, validation, stages."""

from tidal.config.job import JobConfig, build_processor, load_config, parse_job
from tidal.config.spec import ObjectSpec, build, parse_spec

__all__ = ["JobConfig", "ObjectSpec", "build", "build_processor", "load_config", "parse_job", "parse_spec"]
