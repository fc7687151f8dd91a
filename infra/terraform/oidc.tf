# GitHub's OIDC provider. An account holds one provider per URL and the seed's setup already made
# one, so by default it is adopted (looked up); set create_github_oidc_provider for a new account.
locals {
  github_oidc_url = "https://token.actions.githubusercontent.com"
  github_oidc_arn = (
    var.create_github_oidc_provider
    ? aws_iam_openid_connect_provider.github[0].arn
    : data.aws_iam_openid_connect_provider.github[0].arn
  )
}

resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_github_oidc_provider ? 1 : 0
  url            = local.github_oidc_url
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1
  url   = local.github_oidc_url
}

# The trust of every role the workflows assume: only jobs of this repository, bound to one GitHub
# environment, running on the release branch, with the STS audience. The deployer roles use
# their environment's; the promotion planner uses the unprotected plan environment's.
#
# GitHub's default subject of an environment job ("repo:R:environment:E") names no branch, so
# any branch's workflow that names the environment could assume the role. The repository's OIDC
# subject template adds the ref ("include_claim_keys": ["repo", "context", "ref"]), giving
# "repo:R:environment:E:ref:refs/heads/main"; docs/guide.md (Configuration, "Environments") shows the one call
# that sets it. Until it is set, every login is refused, never widened.
data "aws_iam_policy_document" "github_environment_trust" {
  for_each = toset(concat(keys(var.environments), [var.promotion_plan_environment]))

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${each.key}:ref:refs/heads/${var.release_branch}"]
    }
  }
}
