"""Thin DVC stage adapters: read params, call the unetseg library, write outputs."""
