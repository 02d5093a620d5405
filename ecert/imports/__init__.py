"""Streaming imports from the core system: persons, enrolments, contributions, policies, …"""
