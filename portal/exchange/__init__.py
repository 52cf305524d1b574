"""The exchange: reviews, requests, cases and documents."""
