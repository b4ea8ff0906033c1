"""The fake policy host: HTTPS for mta-sts.<domain>, honest or misbehaving on purpose."""
