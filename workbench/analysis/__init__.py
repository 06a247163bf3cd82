"""Reading runs back: statistics (`stats`), paired comparison (`compare`), the CI gate (`gate`) and
comparison reports (`report`)."""
