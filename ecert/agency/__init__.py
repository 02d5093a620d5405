"""The agency's counter: staff accounts and sign-in, the person's file, audit trails, keys."""
