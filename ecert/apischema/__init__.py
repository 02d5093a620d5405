"""The OpenAPI document as integrators need it: readable operation ids and problem+json errors
with each route's codes (spec §8)."""
