"""Configuration of ``rolesanywhere ship``: a :class:`ShipConfig` from Fluent Bit, TOML or flags.

``rolesanywhere ship`` replaces the Fluent Bit set-up of the AWS Big Data Blog post "Implement
secure hybrid and multicloud log ingestion with Amazon OpenSearch Ingestion" (a ``tail`` input,
an ``http`` output with ``aws_auth``, credentials from ``aws_signing_helper credential-process``).
Three sources, merged as *defaults < config file < flags*:

- :func:`from_fluent_bit`: the classic Fluent Bit format, so an existing ``fluent-bit.conf``
  keeps working;
- :func:`from_toml`: our own format (see :mod:`rolesanywhere.ship.config.toml`);
- :func:`add_ship_arguments` + :func:`from_args`: the command line (``-c/--config FILE`` reads a
  Fluent Bit or TOML file first, detected by extension, then by content).

Every problem is a one-line :class:`ShipConfigError` (an
:class:`~rolesanywhere.errors.InvalidParameterError`) saying where (``file:line``, ``file: key``
or ``--flag``), what is wrong and how to fix it. Anything read but not used (unknown keys,
plugins, filters) is a :class:`ConfigWarning` naming the section, key and ``file:line``: nothing
is ignored silently.

With neither an identity nor ``aws_profile``, credentials come from ``$AWS_PROFILE`` (else the
``default`` profile), as Fluent Bit's default chain would find them.

Modules (this package imports none of them: import from the module):

- :mod:`rolesanywhere.ship.config.model`: :class:`ShipConfig`, :class:`ShipConfigError`,
  :class:`ConfigWarning`, and the TOML writer
  (:meth:`ShipConfig.to_toml`);
- :mod:`rolesanywhere.ship.config.units`: booleans, sizes, times and retry limits as written;
- :mod:`rolesanywhere.ship.config.fluentbit_reader`: the classic Fluent Bit syntax;
- :mod:`rolesanywhere.ship.config.fluentbit`: Fluent Bit sections mapped to ship settings;
- :mod:`rolesanywhere.ship.config.toml`: the TOML format (schema and reader);
- :mod:`rolesanywhere.ship.config.load`: :func:`from_fluent_bit`, :func:`from_toml`,
  :func:`load_file` and :func:`detect_format`;
- :mod:`rolesanywhere.ship.config.flags`: :func:`add_ship_arguments` and :func:`from_args`;
- :mod:`rolesanywhere.ship.config.merge`: what one source says, merging the sources and
  validating the result.

Imports stay light: stdlib (``tomllib`` when TOML is read), and modules of this package that
import neither ``httpx`` nor ``cryptography``.
"""
