# A recipe-local component: nginx serving one page, with a guest test that
# fetches the page from inside the booted image. The recipe names this
# directory in kiln { component_paths = ["components"] }.
component "static-site" {
  version     = "1.0.0"
  description = "nginx serving a single page on a port"

  parameter "port" {
    type    = number
    default = 80
  }
  parameter "message" {
    type        = string
    description = "the text of the page"
  }

  build "file" "site" {
    destination = "/etc/nginx/sites-available/default"
    source      = "files/site.conf.tmpl"
    template    = true
  }
  build "file" "page" {
    destination = "/var/www/html/index.html"
    content     = "<!doctype html>\n<title>kiln</title>\n<p>${param.message}</p>\n"
    mode        = "0644"
    owner       = "www-data"
    group       = "www-data"
  }
  build "service" "nginx" {
    enable = ["nginx.service"]
  }
  validate "shell" "config" {
    inline = ["nginx -t"]
  }
  test "shell" "serves-page" {
    # nginx may still be starting when the tests begin: retry.
    inline  = ["curl -fsS --max-time 10 http://127.0.0.1:${param.port}/ | grep -F '${param.message}'"]
    timeout = "1m"
    retries = 5
  }
}
