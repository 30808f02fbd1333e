"""Glue between ``rolesanywhere ship``'s configuration and the shipping engine: the engine's
:class:`~rolesanywhere.ship.shipperconfig.ShipperConfig` from a
:class:`~rolesanywhere.ship.config.model.ShipConfig` (the engine itself never reads
configuration)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rolesanywhere.ship.shipperconfig import ShipperConfig

if TYPE_CHECKING:
    from rolesanywhere.ship.config.model import ShipConfig

__all__ = ["shipper_config"]


def shipper_config(config: ShipConfig, **overrides: Any) -> ShipperConfig:
    """The shipper settings of a ``rolesanywhere ship`` :class:`ShipConfig`; ``overrides`` are
    more :class:`ShipperConfig` settings."""
    verify: bool | str = config.tls_verify
    if config.tls_verify and config.ca_bundle:
        verify = config.ca_bundle
    options: dict[str, Any] = {
        "url": config.url,
        "batch_bytes": config.batch_bytes,
        "batch_events": config.batch_events,
        "flush_interval": config.flush_interval,
        "gzip": config.compress,
        "retry_limit": config.retry_limit,
        "backoff_max": config.max_backoff,
        "request_timeout": config.request_timeout,
        "verify": verify,
        "headers": config.headers,
        "log_key": config.log_key,
        "date_key": config.date_key,
        "date_format": config.date_format,
        "path_key": config.path_key,
        "host_key": config.host_key,
        "fields": config.fields,
        "state_dir": config.state_dir or None,
    }
    options.update(overrides)
    return ShipperConfig(**options)
