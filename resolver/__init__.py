"""Recursive resolution: finding the responsible node, querying it, caching answers.

Built by the hierarchy issue; the foundation's nodes are authoritative only.
"""
