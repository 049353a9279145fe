"""HTTP plumbing shared by Oppen's two servers (`oppen serve` and `oppen policy serve`):
body-size limits and error bodies that never echo what a client sent."""
