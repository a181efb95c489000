"""The cluster of a multi-host job: bootstrap, the leader's actors on the other hosts, and which host keeps which records."""
