// Pin of Gitea, the Forge (identity provider) that hack/forge.sh runs; hack/build-tools.sh gitea
// builds it. Gitea is served by the Go module proxy as code.gitea.io/gitea, but its own go.mod
// names the module gitea.dev, so a plain `require code.gitea.io/gitea` fails ("module declares
// its path as: gitea.dev"); the replace below resolves it. The binary is built inside a copy of
// that module's source (with Gitea's own go.mod, go.sum and replace directives), not from this
// wrapper: change the version on the replace line (and the require) to move the pin.
module hero.dev/hack/tools/gitea

go 1.26.4

require gitea.dev v1.27.3

replace gitea.dev => code.gitea.io/gitea v1.27.3
