"""The versioned JSON API (/api/v1/): personal tokens, the same roles and domain calls as the
console's views, and an OpenAPI document generated from the endpoints."""
