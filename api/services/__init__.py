"""What the API does, apart from how it is asked: routes (and later the builder page and
replay) call these services, so each rule is written once."""
