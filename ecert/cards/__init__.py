"""The physical social security card: loss reports, lapse by working days, replacement, errata."""
