"""Tests of descend.schedules: torch counterparts, reduce-on-plateau, validation, integration."""
