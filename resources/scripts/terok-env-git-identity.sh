# shellcheck shell=bash
# Git identity helpers. TEROK_GIT_AUTHORSHIP decides who authors commits:
#   agent (default)     the agent's identity (GIT_AUTHOR_*)
#   human               the human's identity (HUMAN_GIT_*)
#   agent-human         agent as author, human as committer
#   human-agent         human as author, agent as committer
terok_git_identity() {
    local agent_name=${1:-${GIT_AUTHOR_NAME:-AI Agent}} agent_email=${2:-${GIT_AUTHOR_EMAIL:-ai@localhost}}
    local human_name=${HUMAN_GIT_NAME:-Nobody} human_email=${HUMAN_GIT_EMAIL:-nobody@localhost}
    case ${TEROK_GIT_AUTHORSHIP:-agent} in
        human) agent_name=$human_name agent_email=$human_email ;;
        agent-human) export GIT_COMMITTER_NAME=$human_name GIT_COMMITTER_EMAIL=$human_email ;;
        human-agent)
            export GIT_COMMITTER_NAME=$agent_name GIT_COMMITTER_EMAIL=$agent_email
            agent_name=$human_name agent_email=$human_email
            ;;
    esac
    export GIT_AUTHOR_NAME=$agent_name GIT_AUTHOR_EMAIL=$agent_email
    case ${TEROK_GIT_AUTHORSHIP:-agent} in
        agent-human | human-agent) ;;
        *) export GIT_COMMITTER_NAME=$agent_name GIT_COMMITTER_EMAIL=$agent_email ;;
    esac
}
