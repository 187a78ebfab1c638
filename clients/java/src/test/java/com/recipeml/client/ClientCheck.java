package com.recipeml.client;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * Drives every method of {@link RecipeMlClient} against a live server and prints what it saw as
 * one JSON object; {@code tests/clients/test_java_client.py} compiles and runs it, then checks it.
 *
 * <p>Arguments: base URL, a known user id, a known recipe id, an unknown user id (also used as an unknown
 * recipe id)[, API key]. It writes to the service: an interaction, and catalogue records (tags of its own,
 * made unique per run) on three of the user's recommended recipes, so point it at a test or dev service.
 */
public final class ClientCheck {
    private ClientCheck() {}

    public static void main(String[] args) throws Exception {
        URI baseUrl = URI.create(args[0]);
        long user = Long.parseLong(args[1]);
        long recipe = Long.parseLong(args[2]);
        long unknown = Long.parseLong(args[3]);
        RecipeMlClient client = new RecipeMlClient(baseUrl, args.length > 4 ? args[4] : null);
        Map<String, Object> seen = new LinkedHashMap<>();

        Models.Health health = client.health();
        seen.put("health", health.status());
        seen.put("catalogue_before", health.catalogue());
        Models.RecipeRequest request = new Models.RecipeRequest(user, 5, null, null, 0.0, null);
        Models.RecipeRecommendations before = client.recommendRecipes(request);
        seen.put("before", ids(before.recommendations()));
        seen.put("model_used", before.modelUsed());
        seen.put("model_version", before.modelVersion());
        seen.put("recommendation_id", before.recommendationId());
        seen.put("variant", before.variant());
        seen.put("exhausted", before.exhausted());

        try {
            client.recommendRecipes(Models.RecipeRequest.of(unknown, 3));
            seen.put("unknown", "no error");
        } catch (RecipeMlException e) {
            seen.put("unknown", Map.of(
                    "status", e.status(),
                    "unknown_user", e.isUnknownUser(),
                    "user_id", e.problem().userId(),
                    "cold_start", e.problem().coldStart()));
        }
        try {
            client.recommendRecipes(Models.RecipeRequest.of(user, 0));
            seen.put("invalid", "no error");
        } catch (RecipeMlException e) {
            seen.put("invalid", Map.of("status", e.status(), "field", e.problem().errors().get(0).field()));
        }

        long cooked = before.recommendations().get(0).recipeId();
        Models.InteractionAccepted accepted = client.postInteraction(new Models.InteractionEvent(
                user, cooked, "cook", null, Instant.now().toString(), "java-" + UUID.randomUUID()));
        seen.put("accepted", accepted.applied());
        Models.RecipeRecommendations after = client.recommendRecipes(request);
        seen.put("cooked", cooked);
        seen.put("after", ids(after.recommendations()));
        seen.put("after_cached", after.cached());

        Models.BatchResponse batch = client.recommendBatch(Models.BatchRequest.of(List.of(user, unknown), 3));
        List<String> kinds = batch.results().stream()
                .map(entry -> entry instanceof Models.BatchRecipes ok
                        ? "recipes:" + ok.recommendations().size()
                        : "failure:" + ((Models.BatchFailure) entry).problem().status())
                .toList();
        seen.put("batch", kinds);

        seen.put("cold_start", client.coldStart(Models.ColdStartRequest.of(3, List.of(recipe))).recommendations().size());
        seen.put("similar_users", client.similarUsers(new Models.SimilarUsersRequest(user, 3)).similarUsers().size());
        Models.SimilarRecipes similar = client.similarRecipes(Models.SimilarRecipesRequest.of(recipe, 3));
        seen.put("similar_recipes", ids(similar.similarRecipes()));

        seen.put("catalogue", catalogue(client, user, recipe, unknown, after));

        System.out.println(new ObjectMapper().writeValueAsString(seen));
    }

    /**
     * The catalogue calls and the tag filters: the user's top three recipes tagged (one PUT, a bulk of two), each
     * call's answer, the problems of a bad tag and of an unknown recipe, then the user's recommendations without
     * the tag, with it only, and with a tag nobody has (on every recommendation route).
     */
    private static Map<String, Object> catalogue(
            RecipeMlClient client, long user, long recipe, long unknown, Models.RecipeRecommendations shown) {
        Map<String, Object> seen = new LinkedHashMap<>();
        String run = UUID.randomUUID().toString().substring(0, 8);
        String tag = "java:check-" + run;
        List<String> unused = List.of("java:unused-" + run);
        List<Long> tagged = ids(shown.recommendations()).subList(0, 3);
        seen.put("tag", tag);
        seen.put("tagged", tagged);

        Models.RecipeWritten written = client.putRecipe(tagged.get(0), new Models.RecipeFields(
                List.of(tag, "vegetarian"), true, "2026-11-30T08:00:00Z", "Java client check", null));
        seen.put("written", Map.of(
                "applied", written.applied(),
                "in_catalogue", written.inCatalogue(),
                "known_to_models", written.knownToModels(),
                "tags", written.tags()));
        Models.RecipeDetails details = client.getRecipe(tagged.get(0));
        seen.put("got", details);
        seen.put("got_is_written", details.equals(written.details()));

        Models.BulkRecipesWritten bulk = client.putRecipes(List.of(
                Models.RecipeUpsert.of(tagged.get(1), Models.RecipeFields.of(List.of(tag))),
                new Models.RecipeUpsert(tagged.get(2), List.of(tag), true, null, null, null)));
        seen.put("bulk", bulk);
        seen.put("bulk_got", client.getRecipe(tagged.get(2)).tags());

        try {
            client.putRecipe(unknown, Models.RecipeFields.of(List.of("Not A Tag")));
            seen.put("bad_tag", "no error");
        } catch (RecipeMlException e) {
            seen.put("bad_tag", Map.of("status", e.status(), "field", e.problem().errors().get(0).field()));
        }
        try {
            client.putRecipes(List.of(
                    Models.RecipeUpsert.of(unknown, Models.RecipeFields.of(List.of(tag))),
                    Models.RecipeUpsert.of(unknown - 1, Models.RecipeFields.of(List.of(tag, "Not A Tag")))));
            seen.put("bad_bulk", "no error");
        } catch (RecipeMlException e) {
            seen.put("bad_bulk", Map.of("status", e.status(), "field", e.problem().errors().get(0).field()));
        }
        try {
            client.getRecipe(unknown);
            seen.put("unknown_recipe", "no error");
        } catch (RecipeMlException e) {
            seen.put("unknown_recipe", Map.of(
                    "status", e.status(), "unknown_recipe", e.isUnknownRecipe(), "recipe_id", e.problem().recipeId()));
        }

        Models.RecipeRequest request = new Models.RecipeRequest(user, 5, null, null, 0.0, null);
        Models.RecipeRecommendations without = client.recommendRecipes(request.withExcludeTags(List.of(tag)));
        seen.put("without_tag", ids(without.recommendations()));
        seen.put("without_tag_exhausted", without.exhausted());
        Models.RecipeRecommendations only = client.recommendRecipes(request.withRequireTags(List.of(tag)));
        seen.put("only_tag", ids(only.recommendations()));
        seen.put("only_tag_exhausted", only.exhausted());

        Models.RecipeRecommendations none = client.recommendRecipes(request.withRequireTags(unused));
        Models.BatchRecipes batch = (Models.BatchRecipes) client.recommendBatch(
                Models.BatchRequest.of(List.of(user), 5).withRequireTags(unused)).results().get(0);
        Models.ColdStartRecommendations cold = client.coldStart(
                Models.ColdStartRequest.of(5, List.of(recipe)).withRequireTags(unused));
        Models.SimilarRecipes similar = client.similarRecipes(
                Models.SimilarRecipesRequest.of(recipe, 5).withRequireTags(unused));
        seen.put("unused_tag", Map.of(
                "recipes", List.of(none.recommendations().size(), none.exhausted()),
                "batch", List.of(batch.recommendations().size(), batch.exhausted()),
                "cold_start", List.of(cold.recommendations().size(), cold.exhausted()),
                "similar_recipes", List.of(similar.similarRecipes().size(), similar.exhausted())));

        seen.put("health", client.health().catalogue());
        return seen;
    }

    private static List<Long> ids(List<Models.Recommendation> recommendations) {
        return recommendations.stream().map(Models.Recommendation::recipeId).toList();
    }
}
