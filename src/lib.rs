//! terok-executor: runs AI coding agents in containers and serves them to editors as one ACP agent.
