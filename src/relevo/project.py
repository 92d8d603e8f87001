"""The project file, ``relevo.yaml``: configuration that lives in version control.

    rules:                 # the rule set (see docs/rules.md); each section is applied
      - id: ...            # at start when it differs from the active version
    placements: [...]      # see relevo.decisions.placements
    experiments: [...]     # see relevo.decisions.experiments
    flags: [...]           # see relevo.decisions.flags
    webhooks:
      - name: crm
        url: https://example.com/hooks/relevo
        secret: ${RELEVO_CRM_SECRET}     # ${VAR} is read from the environment
        types: [cart_abandoned]          # optional: only these action types

Unknown sections are errors, so a typo never silently disables something.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relevo.errors import ConfigurationError
from relevo.events import field_path

_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)\}")


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(pattern=r"^https?://")
    secret: str = Field(min_length=8)
    types: list[str] | None = None


class Project(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] | None = None
    placements: list[dict[str, Any]] | None = None
    experiments: list[dict[str, Any]] | None = None
    flags: list[dict[str, Any]] | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)


def _expand(text: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigurationError(f"the project file uses ${{{name}}}, which is not set")
        return os.environ[name]

    return _VARIABLE.sub(value, text)


def load_project(path: Path | None) -> Project:
    if path is None:
        return Project()
    try:
        data = yaml.safe_load(_expand(path.read_text())) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigurationError(f"can't read the project file {path}: {error}") from None
    try:
        return Project.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = field_path(tuple(first["loc"]))
        raise ConfigurationError(f"{path}: {where}: {first['msg']}", field=where) from None
