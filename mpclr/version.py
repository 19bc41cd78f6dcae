"""The package version (its own module, so that modules on every floor can read it without importing the
package, whose __init__ sits on the top floor)."""

__version__ = "0.1.0"
