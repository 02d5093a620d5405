"""Self-service lookups for the insured person: enrolment, account, benefits, estimate, history."""
