"""Test helpers: real servers started by the test session, and polling."""
